"""The ``memory`` backend: process-local, fast, for tests and caches.

Capabilities: TTL, CAS, TRANSACTIONS, QUERY, SCAN. Not durable, not shared.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timezone
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from polystore import AlreadyExistsError, ConflictError
from polystore.spi import (
    DEFAULT_MAX_VALUE_BYTES,
    BackendRegistry,
    BackendSpec,
    BaseBackend,
    BaseStore,
    BaseTransaction,
    Capabilities,
    DataStore,
    DataStoreTransaction,
    Entry,
    Health,
    JsonCodec,
    JSONValue,
    Scalar,
    Version,
    hookimpl,
    matches_where,
    new_version,
)

__all__ = ["MemoryBackend", "MemorySettings", "MemoryStore"]

CAPABILITIES = (
    Capabilities.TTL
    | Capabilities.CAS
    | Capabilities.TRANSACTIONS
    | Capabilities.QUERY
    | Capabilities.SCAN
)

# key -> (encoded value, version, expires_at as epoch seconds or None)
_Record = tuple[bytes, Version, "float | None"]
_ABSENT = object()
_SWEEP_EVERY = 10_000


class MemorySettings(BaseModel):
    """Options of the ``memory`` backend."""

    model_config = ConfigDict(extra="forbid")

    plugin: Literal["memory"] = "memory"
    max_value_bytes: int = Field(default=DEFAULT_MAX_VALUE_BYTES, gt=0)


def _to_datetime(expires_at: float | None) -> datetime | None:
    return None if expires_at is None else datetime.fromtimestamp(expires_at, tz=timezone.utc)


class MemoryStore(BaseStore):
    """One namespace held in a dict."""

    def __init__(self, name: str, settings: MemorySettings) -> None:
        super().__init__(
            name, CAPABILITIES, codec=JsonCodec(), max_value_bytes=settings.max_value_bytes
        )
        self._data: dict[str, _Record] = {}
        self._writes = 0

    def _live(self, key: str) -> _Record | None:
        record = self._data.get(key)
        if record is None:
            return None
        expires_at = record[2]
        if expires_at is not None and expires_at <= time.time():
            del self._data[key]
            return None
        return record

    def _entry(self, key: str, record: _Record) -> Entry:
        return Entry(key, self.codec.decode(record[0]), record[1], _to_datetime(record[2]))

    def _check(self, key: str, if_version: Version | None, if_absent: bool) -> None:
        current = self._live(key)
        if if_absent and current is not None:
            raise AlreadyExistsError(
                "key already exists", backend=self.name, operation="save", key=key
            )
        if if_version is not None and (current is None or current[1] != if_version):
            raise ConflictError("version mismatch", backend=self.name, operation="save", key=key)

    def _put(self, key: str, data: bytes, ttl: float | None) -> Version:
        version = new_version()
        self._data[key] = (data, version, None if ttl is None else time.time() + ttl)
        self._writes += 1
        if self._writes % _SWEEP_EVERY == 0:
            self.reap_expired()
        return version

    def reap_expired(self) -> int:
        """Remove expired entries now; return how many were removed."""
        now = time.time()
        expired = [k for k, r in self._data.items() if r[2] is not None and r[2] <= now]
        for key in expired:
            del self._data[key]
        return len(expired)

    async def _get_entry(self, key: str) -> Entry | None:
        record = self._live(key)
        return None if record is None else self._entry(key, record)

    async def _get(self, key: str) -> JSONValue | None:
        record = self._live(key)
        return None if record is None else self.codec.decode(record[0])

    async def _exists(self, key: str) -> bool:
        return self._live(key) is not None

    async def _save(
        self,
        key: str,
        value: JSONValue,
        data: bytes,
        ttl: float | None,
        if_version: Version | None,
        if_absent: bool,
    ) -> Version:
        self._check(key, if_version, if_absent)
        return self._put(key, data, ttl)

    async def _delete(self, key: str, if_version: Version | None) -> bool:
        record = self._live(key)
        if if_version is not None and (record is None or record[1] != if_version):
            raise ConflictError("version mismatch", backend=self.name, operation="delete", key=key)
        if record is None:
            return False
        del self._data[key]
        return True

    async def _get_many(self, keys: list[str]) -> list[JSONValue | None]:
        decode = self.codec.decode
        out: list[JSONValue | None] = []
        for key in keys:
            record = self._live(key)
            out.append(None if record is None else decode(record[0]))
        return out

    async def _save_many(
        self, items: list[tuple[str, JSONValue, bytes]], ttl: float | None
    ) -> list[Version]:
        return [self._put(key, data, ttl) for key, _, data in items]

    async def _delete_many(self, keys: list[str]) -> int:
        count = 0
        for key in keys:
            if self._live(key) is not None:
                del self._data[key]
                count += 1
        return count

    async def _scan(self, prefix: str, batch_size: int) -> AsyncIterator[str]:
        keys = sorted(k for k in self._data if k.startswith(prefix))
        for start in range(0, len(keys), batch_size):
            for key in keys[start : start + batch_size]:
                if self._live(key) is not None:
                    yield key
            await asyncio.sleep(0)

    async def _find(self, where: dict[str, Scalar], limit: int | None) -> list[Entry]:
        found: list[Entry] = []
        for key in sorted(self._data):
            record = self._live(key)
            if record is None:
                continue
            entry = self._entry(key, record)
            if matches_where(entry.value, where):
                found.append(entry)
                if limit is not None and len(found) >= limit:
                    break
        return found

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[DataStoreTransaction]:
        tx = _MemoryTransaction(self)
        yield tx
        tx.commit()

    async def _health(self) -> Health:
        return Health(ok=True, backend=self.name, latency_ms=0.0, detail=f"{len(self._data)} keys")


class _MemoryTransaction(BaseTransaction):
    """Buffers writes; checks every condition and applies them at commit, atomically."""

    store: MemoryStore

    def __init__(self, store: MemoryStore) -> None:
        super().__init__(store)
        self._staged: dict[str, _Record | None] = {}
        self._conditions: list[tuple[str, Version | None, bool]] = []

    def _view(self, key: str) -> _Record | None:
        if key in self._staged:
            return self._staged[key]
        return self.store._live(key)

    def _stage_condition(
        self, key: str, if_version: Version | None, if_absent: bool, op: str
    ) -> None:
        current = self._view(key)
        if if_absent and current is not None:
            raise AlreadyExistsError(
                "key already exists", backend=self.store.name, operation=op, key=key
            )
        if if_version is not None and (current is None or current[1] != if_version):
            raise ConflictError("version mismatch", backend=self.store.name, operation=op, key=key)
        if key not in self._staged and (if_absent or if_version is not None):
            self._conditions.append((key, if_version, if_absent))

    async def _get_entry(self, key: str) -> Entry | None:
        record = self._view(key)
        return None if record is None else self.store._entry(key, record)

    async def _save(
        self,
        key: str,
        value: JSONValue,
        data: bytes,
        ttl: float | None,
        if_version: Version | None,
        if_absent: bool,
    ) -> Version:
        self._stage_condition(key, if_version, if_absent, "save")
        version = new_version()
        self._staged[key] = (data, version, None if ttl is None else time.time() + ttl)
        return version

    async def _delete(self, key: str, if_version: Version | None) -> bool:
        self._stage_condition(key, if_version, False, "delete")
        existed = self._view(key) is not None
        self._staged[key] = None
        return existed

    def commit(self) -> None:
        store = self.store
        for key, if_version, if_absent in self._conditions:
            store._check(key, if_version, if_absent)
        for key, record in self._staged.items():
            if record is None:
                store._data.pop(key, None)
            else:
                store._data[key] = record


class MemoryBackend(BaseBackend):
    """Namespaces held in this process's memory."""

    def __init__(self, settings: MemorySettings, *, name: str = "memory") -> None:
        super().__init__(name, CAPABILITIES)
        self.settings = settings

    def __repr__(self) -> str:
        return f"<MemoryBackend {self.name!r}>"

    async def _open(self) -> None:
        return None

    async def _close(self) -> None:
        self._stores.clear()

    def _make_store(self, namespace: str) -> DataStore:
        return MemoryStore(f"{self.name}/{namespace}", self.settings)

    async def _ping(self) -> str:
        return "in-process"


@hookimpl
def polystore_register_backends(registry: BackendRegistry) -> None:
    """Register the ``memory`` backend."""
    registry.register(
        BackendSpec(
            name="memory",
            factory=MemoryBackend,
            settings_model=MemorySettings,
            capabilities=CAPABILITIES,
            description="process-local dict; for tests and caches",
        )
    )
