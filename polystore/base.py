"""The ABC that store implementations subclass.

Public methods validate their input (before any I/O), check capabilities, encode values,
apply the retry policy to idempotent reads, bound the whole call by the store's timeout
(:mod:`polystore.timeouts`), and then call small abstract methods (``_get_entry``,
``_save``, ...) that a backend implements.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, TypeVar, cast

from polystore.coalesce_store import CoalescingStore
from polystore.codecs import Codec, JsonCodec
from polystore.errors import (
    StoreError,
    UnsupportedOperationError,
    ValidationError,
)
from polystore.protocol import DataStoreTransaction
from polystore.retry import RetryPolicy
from polystore.timeouts import CallTimeout
from polystore.types import TTL, Capabilities, Entry, Health, JSONInput, JSONValue, Scalar, Version
from polystore.validation import (
    validate_batch_size,
    validate_key,
    validate_keys,
    validate_limit,
    validate_prefix,
    validate_ttl,
    validate_where,
)

__all__ = [
    "DEFAULT_MAX_VALUE_BYTES",
    "BaseStore",
    "BaseTransaction",
    "new_version",
    "new_versions",
]

DEFAULT_MAX_VALUE_BYTES = 8 * 1024 * 1024
"""Largest encoded value accepted by default (8 MiB)."""

_NO_RETRY = RetryPolicy(attempts=1)
T = TypeVar("T")


def new_version() -> Version:
    """A fresh random version token (64 bits, hex)."""
    return Version(os.urandom(8).hex())


def new_versions(count: int) -> list[Version]:
    """``count`` fresh random version tokens (64 bits each, hex) from one ``urandom`` call,
    for batches."""
    text = os.urandom(8 * count).hex()
    return cast("list[Version]", [text[i : i + 16] for i in range(0, 16 * count, 16)])


def check_write_flags(if_version: object, if_absent: object) -> None:
    """Reject ``if_version`` and ``if_absent`` used together, or of the wrong type."""
    if if_version is not None:
        if not isinstance(if_version, str) or not if_version:
            raise ValidationError("if_version must be a version token (non-empty str)")
        if if_absent:
            raise ValidationError("if_version and if_absent cannot be used together")
    if not isinstance(if_absent, bool):
        raise ValidationError("if_absent must be a bool")


class BaseStore(CoalescingStore, ABC):
    """Implementation base for a :class:`~polystore.protocol.DataStore`.

    Args:
        name: The store's name, conventionally ``"backend/namespace"``.
        capabilities: What this store guarantees.
        codec: Codec for backends that store bytes; JSON by default.
        retry: Retry policy for idempotent operations.
        max_value_bytes: Largest encoded value accepted.
        timeout: Seconds one call may take, everything included (pool waits,
            reconnects, retries); ``None`` leaves calls unbounded.
        coalesce: Send concurrent single-key calls as batches (see
            :mod:`polystore.coalesce`); takes effect only where the backend implements
            the batch primitives.
        coalesce_max_batch: Calls that make a batch go out at once.
    """

    name: str
    capabilities: Capabilities

    def __init__(
        self,
        name: str,
        capabilities: Capabilities,
        *,
        codec: Codec | None = None,
        retry: RetryPolicy | None = None,
        max_value_bytes: int = DEFAULT_MAX_VALUE_BYTES,
        timeout: float | None = None,
        coalesce: bool = False,
        coalesce_max_batch: int = 128,
    ) -> None:
        self.name = name
        self.capabilities = capabilities
        self.codec: Codec = codec if codec is not None else JsonCodec()
        self.retry_policy = retry if retry is not None else _NO_RETRY
        self.max_value_bytes = max_value_bytes
        self.call_timeout = None if timeout is None else CallTimeout(name, timeout)
        self._setup_coalescing(coalesce, coalesce_max_batch)

    def __repr__(self) -> str:
        caps = ",".join(self.capabilities.names())
        return f"<{type(self).__name__} {self.name!r} capabilities={caps}>"

    # -- helpers ----------------------------------------------------------------------

    def _within(
        self, operation: str, key: str | None, work: Awaitable[T], *, write: bool = False
    ) -> Awaitable[T]:
        """``work``, bounded by the store's timeout (see :mod:`polystore.timeouts`)."""
        bound = self.call_timeout
        if bound is None:
            return work
        return bound.run(operation, key, work, write=write)

    async def _retried(self, read: Callable[..., Awaitable[T]], *args: Any) -> T:
        """``read(*args)``, retried by the policy within what is left of the timeout."""
        try:
            return await read(*args)
        except StoreError as exc:
            return await self.retry_policy.retry(exc, lambda: read(*args))

    def _require(self, capability: Capabilities, operation: str) -> None:
        if capability not in self.capabilities:
            raise UnsupportedOperationError(
                f"store does not support {capability.names()[0]}",
                backend=self.name,
                operation=operation,
            )

    def encode(self, value: JSONInput, key: str | None = None) -> bytes:
        """Encode ``value`` with the store's codec and enforce the size limit."""
        try:
            data = self.codec.encode(value)
        except StoreError as exc:
            raise type(exc)(exc.message, backend=self.name, operation="save", key=key) from exc
        if len(data) > self.max_value_bytes:
            raise ValidationError(
                f"value is {len(data)} bytes encoded; the limit is {self.max_value_bytes}",
                backend=self.name,
                operation="save",
                key=key,
            )
        return data

    def _encode_batch(self, keys: list[str], values: list[JSONInput]) -> list[bytes]:
        """Encode a batch with the codec's ``encode_many`` when it has one; enforce the
        size limit. An error names the offending key."""
        encode_many = getattr(self.codec, "encode_many", None)
        try:
            if encode_many is not None:
                encoded: list[bytes] = encode_many(values)
            else:
                encoded = [self.codec.encode(value) for value in values]
        except StoreError:
            for key, value in zip(keys, values, strict=True):
                self.encode(value, key)  # raises again, with the key
            raise
        if max(map(len, encoded)) > self.max_value_bytes:
            for key, value, data in zip(keys, values, encoded, strict=True):
                if len(data) > self.max_value_bytes:
                    self.encode(value, key)  # raises the size error, with the key
        return encoded

    def _check_write(
        self, key: object, ttl: object, if_version: object, if_absent: object
    ) -> float | None:
        validate_key(key)
        checked_ttl = validate_ttl(ttl)
        check_write_flags(if_version, if_absent)
        if checked_ttl is not None:
            self._require(Capabilities.TTL, "save")
        if if_version is not None or if_absent:
            self._require(Capabilities.CAS, "save")
        return checked_ttl

    # -- public API -------------------------------------------------------------------

    async def get(self, key: str) -> JSONValue | None:
        """Return the value stored under ``key``, or ``None`` if absent or expired."""
        validate_key(key)
        read = self._get if self._read_lane is None else self._coalesced_get
        return await self._within("get", key, self._retried(read, key))

    async def get_entry(self, key: str) -> Entry | None:
        """Return the entry (value, version, expiry) of ``key``, or ``None``."""
        validate_key(key)
        read = self._get_entry if self._read_lane is None else self._coalesced_get_entry
        return await self._within("get_entry", key, self._retried(read, key))

    async def save(
        self,
        key: str,
        value: JSONInput,
        *,
        ttl: TTL | None = None,
        if_version: Version | None = None,
        if_absent: bool = False,
    ) -> Version:
        """Store ``value`` under ``key``; return the new version.

        Args:
            key: Non-empty str, at most 1024 UTF-8 bytes, no NUL.
            value: A JSON value.
            ttl: Seconds until the entry expires; ``None`` removes any earlier expiry.
            if_version: Compare-and-set: write only if the current version is this one.
            if_absent: Create-only: write only if the key holds no live entry.

        Raises:
            ValidationError: Bad key, value, ttl or flag combination (before any I/O).
            ConflictError: ``if_version`` did not match.
            AlreadyExistsError: ``if_absent`` and the key exists.
        """
        checked_ttl = self._check_write(key, ttl, if_version, if_absent)
        data = self.encode(value, key)
        save = self._save if self._write_lane is None else self._coalesced_save
        work = save(key, cast(JSONValue, value), data, checked_ttl, if_version, if_absent)
        return await self._within("save", key, work, write=True)

    async def delete(self, key: str, *, if_version: Version | None = None) -> bool:
        """Delete ``key``; return whether a live entry existed.

        Raises:
            ConflictError: ``if_version`` was given and did not match.
        """
        validate_key(key)
        check_write_flags(if_version, False)
        if if_version is not None:
            self._require(Capabilities.CAS, "delete")
        delete = self._delete if self._write_lane is None else self._coalesced_delete
        return await self._within("delete", key, delete(key, if_version), write=True)

    async def exists(self, key: str) -> bool:
        """Return whether ``key`` holds a live entry."""
        validate_key(key)
        read = self._exists if self._read_lane is None else self._coalesced_exists
        return await self._within("exists", key, self._retried(read, key))

    async def get_many(self, keys: Sequence[str]) -> list[JSONValue | None]:
        """Return the values of ``keys`` in order; ``None`` where absent."""
        checked = _check_keys(keys)
        if not checked:
            return []
        return await self._within("get_many", None, self._retried(self._get_many, checked))

    async def save_many(
        self,
        items: Mapping[str, JSONInput] | Iterable[tuple[str, JSONInput]],
        *,
        ttl: TTL | None = None,
    ) -> list[Version]:
        """Store several values in one batch; return their versions in input order.

        Raises:
            ValidationError: A key or value is bad, or a key repeats (before any I/O).
        """
        checked_ttl = validate_ttl(ttl)
        if checked_ttl is not None:
            self._require(Capabilities.TTL, "save_many")
        if isinstance(items, Mapping):
            keys = list(items)  # unique already
            values = list(items.values())
            validate_keys(keys)
        else:
            pairs = list(_unique_pairs(items))
            keys = [pair[0] for pair in pairs]
            values = [pair[1] for pair in pairs]
        if not keys:
            return []
        encoded = self._encode_batch(keys, values)
        prepared = list(zip(keys, cast("list[JSONValue]", values), encoded, strict=True))
        work = self._save_many(prepared, checked_ttl)
        return await self._within("save_many", None, work, write=True)

    async def delete_many(self, keys: Sequence[str]) -> int:
        """Delete several keys in one batch; return how many live entries existed."""
        checked = list(dict.fromkeys(_check_keys(keys)))
        if not checked:
            return 0
        return await self._within("delete_many", None, self._delete_many(checked), write=True)

    def scan(self, *, prefix: str = "", batch_size: int = 500) -> AsyncIterator[str]:
        """Stream the keys starting with ``prefix`` (taken literally, never as a pattern).

        Each key, the first included, comes within the store's timeout.

        Raises:
            ValidationError: Bad prefix or batch size (raised at the call, before I/O).
            UnsupportedOperationError: The store lacks ``SCAN``.
        """
        validate_prefix(prefix)
        validate_batch_size(batch_size)
        self._require(Capabilities.SCAN, "scan")
        keys = self._scan(prefix, batch_size)
        bound = self.call_timeout
        return keys if bound is None else bound.scan(keys)

    async def find(self, where: Mapping[str, Scalar], *, limit: int | None = None) -> list[Entry]:
        """Return live entries whose top-level fields equal ``where``'s values, by key.

        Raises:
            ValidationError: A field name or value is not allowed (operators, non-scalars).
            UnsupportedOperationError: The store lacks ``QUERY``.
        """
        checked = validate_where(where)
        checked_limit = validate_limit(limit)
        self._require(Capabilities.QUERY, "find")
        work = self._retried(self._find, checked, checked_limit)
        return await self._within("find", None, work)

    def transaction(self) -> AbstractAsyncContextManager[DataStoreTransaction]:
        """Group writes atomically; commit on normal exit, roll back on an exception.

        Beginning, committing and rolling back each end within the store's timeout, as
        does every read and write of the transaction; the time spent in the body between
        them is the caller's.

        Raises:
            UnsupportedOperationError: The store lacks ``TRANSACTIONS``.
        """
        self._require(Capabilities.TRANSACTIONS, "transaction")
        scope = self._transaction()
        bound = self.call_timeout
        return scope if bound is None else bound.transaction(scope)

    async def health(self) -> Health:
        """Check that the store answers; never raises for an unreachable server."""
        return await self._health()

    # -- what a backend implements ------------------------------------------------------

    @abstractmethod
    async def _get_entry(self, key: str) -> Entry | None: ...

    async def _get(self, key: str) -> JSONValue | None:
        entry = await self._get_entry(key)
        return None if entry is None else entry.value

    async def _exists(self, key: str) -> bool:
        return await self._get_entry(key) is not None

    @abstractmethod
    async def _save(
        self,
        key: str,
        value: JSONValue,
        data: bytes,
        ttl: float | None,
        if_version: Version | None,
        if_absent: bool,
    ) -> Version: ...

    @abstractmethod
    async def _delete(self, key: str, if_version: Version | None) -> bool: ...

    @abstractmethod
    async def _get_many(self, keys: list[str]) -> list[JSONValue | None]: ...

    @abstractmethod
    async def _save_many(
        self, items: list[tuple[str, JSONValue, bytes]], ttl: float | None
    ) -> list[Version]: ...

    @abstractmethod
    async def _delete_many(self, keys: list[str]) -> int: ...

    def _scan(self, prefix: str, batch_size: int) -> AsyncIterator[str]:
        raise UnsupportedOperationError("scan", backend=self.name, operation="scan")

    async def _find(self, where: dict[str, Scalar], limit: int | None) -> list[Entry]:
        raise UnsupportedOperationError("find", backend=self.name, operation="find")

    def _transaction(self) -> AbstractAsyncContextManager[DataStoreTransaction]:
        raise UnsupportedOperationError("transactions", backend=self.name, operation="transaction")

    @abstractmethod
    async def _health(self) -> Health: ...


def _unique_pairs(items: Iterable[tuple[str, JSONInput]]) -> Iterable[tuple[str, JSONInput]]:
    seen: set[str] = set()
    for pair in items:
        try:
            key, value = pair
        except (TypeError, ValueError):
            raise ValidationError("save_many items must be (key, value) pairs") from None
        validate_key(key)
        if key in seen:
            raise ValidationError("save_many got the same key twice", key=key)
        seen.add(key)
        yield key, value


def _check_keys(keys: object) -> list[str]:
    if isinstance(keys, (str, bytes)) or not isinstance(keys, Iterable):
        raise ValidationError("keys must be a sequence of str, not a single str")
    checked = list(keys)
    validate_keys(checked)
    return checked


class BaseTransaction(ABC):
    """Implementation base for a :class:`~polystore.protocol.DataStoreTransaction`."""

    def __init__(self, store: BaseStore) -> None:
        self.store = store

    async def get(self, key: str) -> JSONValue | None:
        """Read a value, seeing this transaction's own writes."""
        entry = await self.get_entry(key)
        return None if entry is None else entry.value

    async def get_entry(self, key: str) -> Entry | None:
        """Read an entry, seeing this transaction's own writes."""
        validate_key(key)
        return await self.store._within("get_entry", key, self._get_entry(key))

    async def save(
        self,
        key: str,
        value: JSONInput,
        *,
        ttl: TTL | None = None,
        if_version: Version | None = None,
        if_absent: bool = False,
    ) -> Version:
        """Stage a write (validated now; conditions checked no later than commit)."""
        checked_ttl = self.store._check_write(key, ttl, if_version, if_absent)
        data = self.store.encode(value, key)
        work = self._save(key, cast(JSONValue, value), data, checked_ttl, if_version, if_absent)
        # Cut short inside a transaction, a write is rolled back: a timeout, not unknown.
        return await self.store._within("save", key, work)

    async def delete(self, key: str, *, if_version: Version | None = None) -> bool:
        """Stage a delete; return whether the key existed."""
        validate_key(key)
        check_write_flags(if_version, False)
        return await self.store._within("delete", key, self._delete(key, if_version))

    @abstractmethod
    async def _get_entry(self, key: str) -> Entry | None: ...

    @abstractmethod
    async def _save(
        self,
        key: str,
        value: JSONValue,
        data: bytes,
        ttl: float | None,
        if_version: Version | None,
        if_absent: bool,
    ) -> Version: ...

    @abstractmethod
    async def _delete(self, key: str, if_version: Version | None) -> bool: ...
