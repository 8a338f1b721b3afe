"""Typed access to a store: pydantic v2 models validated on the way in and out."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

import pydantic
from pydantic import BaseModel

from polystore import idempotency
from polystore.errors import (
    AlreadyExistsError,
    ConflictError,
    IdempotencyConflictError,
    SerializationError,
    ValidationError,
)
from polystore.idempotency import IDEMPOTENCY_PREFIX, Marker
from polystore.protocol import DataStore
from polystore.types import TTL, Capabilities, JSONValue, Scalar, Version
from polystore.validation import validate_ttl

__all__ = ["Collection", "TransactionCollection", "TypedEntry"]

M = TypeVar("M", bound=BaseModel)

_DEFAULT: Any = object()
_RECORD_ATTEMPTS = 30
"""How often :meth:`TransactionCollection.record` tries again after losing a write
conflict to a creator whose write is not visible yet (about 3 s of waiting in all)."""


def _backoff(attempt: int) -> float:
    """Seconds to wait before another try: exponential from 2 ms, capped at 0.1 s,
    with jitter so that the losers of one conflict do not collide again."""
    return min(0.002 * 2.0**attempt, 0.1) * random.uniform(0.5, 1.5)  # noqa: S311 - jitter only


def field_errors(exc: pydantic.ValidationError, limit: int = 5) -> str:
    """Each failing field with what is wrong, never the value (it may be a secret)."""
    errors = exc.errors(include_input=False, include_url=False)
    parts = [
        f"{'.'.join(str(part) for part in error['loc']) or '(root)'}: {error['msg']}"
        for error in errors[:limit]
    ]
    if len(errors) > limit:
        parts.append(f"and {len(errors) - limit} more")
    return "; ".join(parts)


@dataclass(frozen=True, slots=True)
class TypedEntry(Generic[M]):
    """A stored model with its version and expiry."""

    key: str
    model: M
    version: Version
    expires_at: datetime | None


class Collection(Generic[M]):
    """Models of one type in one store.

    Args:
        store: The store (usually a route's).
        model: The pydantic model class.
        key_field: The model field holding the key; defaults to the model's
            ``__polystore_key__`` class attribute, else ``"id"``.
        default_ttl: ttl applied by :meth:`save` when none is given.
    """

    def __init__(
        self,
        store: DataStore,
        model: type[M],
        *,
        key_field: str | None = None,
        default_ttl: TTL | None = None,
    ) -> None:
        self.store = store
        self.model = model
        self.key_field: str = key_field or str(getattr(model, "__polystore_key__", "id"))
        if self.key_field not in model.model_fields:
            raise ValidationError(f"{model.__name__} has no field {self.key_field!r}")
        self.default_ttl = validate_ttl(default_ttl)
        self._adapter = pydantic.TypeAdapter(model)

    def __repr__(self) -> str:
        return f"<Collection {self.model.__name__} in {self.store.name!r}>"

    def key_of(self, obj: M) -> str:
        """The key under which ``obj`` is stored."""
        key = getattr(obj, self.key_field)
        if not isinstance(key, str):
            raise ValidationError(f"{self.model.__name__}.{self.key_field} must be str")
        return key

    def dump(self, obj: M) -> JSONValue:
        """The JSON form of ``obj`` (Decimal, datetime and UUID become strings)."""
        if not isinstance(obj, self.model):
            raise ValidationError(f"expected {self.model.__name__}, got {type(obj).__name__}")
        dumped: JSONValue = obj.model_dump(mode="json")
        return dumped

    def load(self, value: JSONValue, key: str | None = None) -> M:
        """Validate a stored JSON value back into a model.

        Raises:
            SerializationError: The stored value does not fit the model.
        """
        try:
            return self._adapter.validate_python(value)
        except pydantic.ValidationError as exc:
            raise SerializationError(
                f"stored value is not a valid {self.model.__name__}: {exc.error_count()} "
                f"error(s): {field_errors(exc)}",
                backend=self.store.name,
                operation="load",
                key=key,
            ) from exc

    async def save(
        self,
        obj: M,
        *,
        ttl: TTL | None = _DEFAULT,
        if_version: Version | None = None,
        if_absent: bool = False,
    ) -> Version:
        """Store ``obj`` under its key; ``ttl`` defaults to the collection's default."""
        effective_ttl = self.default_ttl if ttl is _DEFAULT else ttl
        return await self.store.save(
            self.key_of(obj),
            self.dump(obj),
            ttl=effective_ttl,
            if_version=if_version,
            if_absent=if_absent,
        )

    async def save_many(self, objs: Iterable[M], *, ttl: TTL | None = _DEFAULT) -> list[Version]:
        """Store several models in one batch."""
        effective_ttl = self.default_ttl if ttl is _DEFAULT else ttl
        items = [(self.key_of(obj), self.dump(obj)) for obj in objs]
        return await self.store.save_many(items, ttl=effective_ttl)

    async def get(self, key: str) -> M | None:
        """The model stored under ``key``, or ``None``."""
        value = await self.store.get(key)
        return None if value is None else self.load(value, key)

    async def get_entry(self, key: str) -> TypedEntry[M] | None:
        """The model with its version and expiry, or ``None``."""
        entry = await self.store.get_entry(key)
        if entry is None:
            return None
        return TypedEntry(key, self.load(entry.value, key), entry.version, entry.expires_at)

    async def get_many(self, keys: Sequence[str]) -> list[M | None]:
        """Models for ``keys`` in order; ``None`` where absent."""
        values = await self.store.get_many(keys)
        return [None if v is None else self.load(v, k) for k, v in zip(keys, values, strict=True)]

    async def delete(self, key: str, *, if_version: Version | None = None) -> bool:
        """Delete the model under ``key``; return whether it existed."""
        return await self.store.delete(key, if_version=if_version)

    async def exists(self, key: str) -> bool:
        """Whether a model is stored under ``key``."""
        return await self.store.exists(key)

    async def find(
        self,
        where: dict[str, Scalar] | None = None,
        /,
        *,
        limit: int | None = None,
        **fields: Scalar,
    ) -> list[M]:
        """Models whose top-level fields equal the given values."""
        entries = await self.store.find({**(where or {}), **fields}, limit=limit)
        return [self.load(e.value, e.key) for e in entries]

    def scan(self, *, prefix: str = "", batch_size: int = 500) -> AsyncIterator[str]:
        """Stream the keys of stored models."""
        return self.store.scan(prefix=prefix, batch_size=batch_size)


class TransactionCollection(Collection[M]):
    """A collection whose :meth:`record` stores one model per idempotency key.

    Each record writes two entries, in one store transaction where the store has them:
    the model under its key, and a marker ``~idempotency:<key>`` holding the model's key
    and the request's payload (see :mod:`polystore.idempotency`). A repeat of the request
    finds the marker and gets the first model back; the same idempotency key with a
    different payload is refused with :class:`~polystore.errors.IdempotencyConflictError`.

    Args:
        store: The store (usually a route's); it must declare ``CAS``.
        model: The pydantic model class.
        idempotency_field: The model field holding the idempotency key.
        key_field: The model field holding the key (see :class:`Collection`).
        request_fields: The fields two requests with one idempotency key must agree on;
            by default every field except the key, the idempotency key and fields with a
            generated default (``default_factory``: ids, timestamps).
    """

    def __init__(
        self,
        store: DataStore,
        model: type[M],
        *,
        idempotency_field: str = "idempotency_key",
        key_field: str | None = None,
        request_fields: Iterable[str] | None = None,
    ) -> None:
        super().__init__(store, model, key_field=key_field)
        if idempotency_field not in model.model_fields:
            raise ValidationError(f"{model.__name__} has no field {idempotency_field!r}")
        self.idempotency_field = idempotency_field
        self.request_fields = idempotency.request_fields(
            model, self.key_field, idempotency_field, request_fields
        )

    def _marker(self, obj: M) -> str:
        return IDEMPOTENCY_PREFIX + str(getattr(obj, self.idempotency_field))

    async def by_idempotency_key(self, idempotency_key: str) -> M | None:
        """The model recorded under ``idempotency_key``, or ``None``."""
        marker = IDEMPOTENCY_PREFIX + idempotency_key
        stored = await self.store.get(marker)
        if stored is None:
            return None
        return await self.get(Marker.parse(stored, backend=self.store.name, marker=marker).key)

    async def record(self, obj: M) -> tuple[M, bool]:
        """Store ``obj`` unless its idempotency key was seen; return (stored, created).

        Concurrent calls with one idempotency key store one model: exactly one caller
        gets ``created=True``, every other gets the stored model and ``False``. Write
        conflicts between them (a serialization failure, an aborted ``WATCH``, a write
        conflict in a MongoDB transaction) are resolved here, never raised.

        Raises:
            IdempotencyConflictError: The idempotency key was used with another payload
                (the error's ``fields`` name the differing fields).
            AlreadyExistsError: Another model with a different idempotency key already
                uses ``obj``'s key.
        """
        marker, key = self._marker(obj), self.key_of(obj)
        value = self.dump(obj)
        if not isinstance(value, dict):  # a pydantic model always dumps to an object
            raise SerializationError(f"{self.model.__name__} did not dump to an object")
        request: dict[str, JSONValue] = {f: value.get(f) for f in self.request_fields}
        note = Marker(key, request).to_json()
        for attempt in range(_RECORD_ATTEMPTS):
            found = await self._recorded(marker, obj, value)
            if found is not None:
                return found
            try:
                await self._create(marker, note, key, value)
            except IdempotencyConflictError:
                raise
            except ConflictError as exc:
                # Another creator won (or holds an uncommitted write): read what it stored.
                if await self.store.exists(key):
                    found = await self._recorded(marker, obj, value)
                    if found is not None:
                        return found
                    raise AlreadyExistsError(
                        "another record already uses this key",
                        backend=self.store.name,
                        operation="record",
                        key=key,
                    ) from exc
                if attempt + 1 == _RECORD_ATTEMPTS:
                    raise
                await asyncio.sleep(_backoff(attempt))
                continue
            return obj, True
        raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises

    def _atomic(self, marker: str, key: str) -> bool:
        """Whether the marker and the record can be written in one transaction: the store
        has transactions and, if sharded, both keys live on one shard."""
        if Capabilities.TRANSACTIONS not in self.store.capabilities:
            return False
        shard_for = getattr(self.store, "shard_for", None)
        return shard_for is None or bool(shard_for(marker) == shard_for(key))

    async def _create(self, marker: str, note: JSONValue, key: str, value: JSONValue) -> None:
        if self._atomic(marker, key):
            async with self.store.transaction() as tx:
                await tx.save(marker, note, if_absent=True)
                await tx.save(key, value, if_absent=True)
            return
        # The marker goes first: a crash in between leaves a marker that the next
        # repeat completes (see _recorded).
        marker_version = await self.store.save(marker, note, if_absent=True)
        try:
            await self.store.save(key, value, if_absent=True)
        except AlreadyExistsError:
            # A repeat of this request may have completed the record under the marker
            # (see _recorded): then the marker is right and stays. Otherwise the key
            # belongs to another record: withdraw the marker pointing at it.
            existing = await self.store.get(key)
            field = self.idempotency_field
            same = (
                isinstance(value, dict)
                and isinstance(existing, dict)
                and existing.get(field) == value.get(field)
            )
            if not same:
                with contextlib.suppress(ConflictError):
                    await self.store.delete(marker, if_version=marker_version)
            raise

    async def _recorded(
        self, marker_key: str, obj: M, value: dict[str, JSONValue]
    ) -> tuple[M, bool] | None:
        """What an earlier record under ``marker_key`` stored, completing a half-done one.

        Raises:
            IdempotencyConflictError: The earlier request had another payload.
        """
        stored = await self.store.get(marker_key)
        if stored is None:
            return None
        marker = Marker.parse(stored, backend=self.store.name, marker=marker_key)
        found = await self.get(marker.key)
        if marker.request is not None:
            self._check_repeat(marker_key, marker.request, obj, value)
        if found is not None:
            if marker.request is None:
                first = self.dump(found)
                assert isinstance(first, dict)
                self._check_repeat(marker_key, first, obj, value)
            if getattr(found, self.idempotency_field) != getattr(obj, self.idempotency_field):
                raise AlreadyExistsError(
                    "the idempotency marker points at a record of another idempotency key",
                    backend=self.store.name,
                    operation="record",
                    key=marker_key,
                )
            return found, False
        if marker.key != self.key_of(obj) and self._atomic(marker_key, marker.key):
            # Written with the marker in one transaction, the record was deleted since.
            raise AlreadyExistsError(
                "idempotency key already used by a record that is gone",
                backend=self.store.name,
                key=marker_key,
            )
        # The marker's creator has not written the record yet (or never will): write the
        # same request's record under the marker's key.
        completed = obj.model_copy(update={self.key_field: marker.key})
        try:
            await self.store.save(marker.key, self.dump(completed), if_absent=True)
        except AlreadyExistsError:
            existing = await self.get(marker.key)
            if existing is None:
                raise
            return existing, False
        return completed, True

    def _check_repeat(
        self, marker_key: str, first: dict[str, JSONValue], obj: M, value: dict[str, JSONValue]
    ) -> None:
        fields = idempotency.differing_fields(self.model, self.request_fields, first, obj, value)
        if fields:
            raise IdempotencyConflictError(
                "idempotency key already used with a different "
                + ", ".join(fields)
                + "; the first request stands",
                fields=fields,
                backend=self.store.name,
                operation="record",
                key=marker_key,
            )

    async def save(
        self,
        obj: M,
        *,
        ttl: TTL | None = _DEFAULT,
        if_version: Version | None = None,
        if_absent: bool = False,
    ) -> Version:
        """Record ``obj`` idempotently (see :meth:`record`); return the stored version.

        Updates of an existing record (for example a status change) go through
        ``if_version``, which skips the idempotency check.
        """
        if if_version is not None:
            return await super().save(obj, ttl=ttl, if_version=if_version)
        stored, _ = await self.record(obj)
        entry = await self.store.get_entry(self.key_of(stored))
        if entry is None:
            raise AlreadyExistsError("recorded entry vanished", backend=self.store.name)
        return entry.version

    async def _scan_records(self, prefix: str, batch_size: int) -> AsyncIterator[str]:
        async for key in self.store.scan(prefix=prefix, batch_size=batch_size):
            if not key.startswith(IDEMPOTENCY_PREFIX):
                yield key

    def scan(self, *, prefix: str = "", batch_size: int = 500) -> AsyncIterator[str]:
        """Stream the keys of stored models (idempotency markers left out)."""
        self.store.scan(prefix=prefix, batch_size=batch_size)  # validates before I/O
        return self._scan_records(prefix, batch_size)
