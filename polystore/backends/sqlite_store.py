"""The store and transaction of the ``sqlite`` backend."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import aiosqlite

from polystore import (
    AlreadyExistsError,
    ConflictError,
    PolystoreError,
    StoreTimeoutError,
    StoreUnavailableError,
)
from polystore.backends import sqlite_sql as q
from polystore.spi import (
    BaseStore,
    BaseTransaction,
    Capabilities,
    DataStoreTransaction,
    Entry,
    ErrorMap,
    Health,
    JSONValue,
    ReadResult,
    Scalar,
    Version,
    WriteOp,
    WriteResult,
    matches_where,
    new_version,
    new_versions,
)

if TYPE_CHECKING:
    from polystore.backends.sqlite import SqliteBackend

__all__ = ["SqliteErrors", "SqliteStore"]

_FIND_PAGE = 256
"""Rows ``find`` fetches at a time while it collects matches up to its limit."""


class SqliteErrors(ErrorMap):
    """Translate sqlite3 errors into polystore errors (the one place this happens).

    ``with SqliteErrors(store.name, "save", key):`` around driver calls; see
    :class:`polystore.spi.ErrorMap` for the arguments.
    """

    __slots__ = ()

    # ValueError: aiosqlite reports a closed connection this way; OSError: the database
    # folder cannot be created.
    driver_errors = (sqlite3.Error, ValueError, OSError)

    def translate(self, exc: BaseException) -> PolystoreError:
        context = {"backend": self.backend, "operation": self.operation, "key": self.key}
        text = str(exc)
        if isinstance(exc, sqlite3.OperationalError) and ("locked" in text or "busy" in text):
            return StoreTimeoutError(f"database is locked: {text}", **context)
        return StoreUnavailableError(f"sqlite error: {text}", **context)


def _expiry(ttl: float | None, now: float) -> float | None:
    return None if ttl is None else now + ttl


def _as_datetime(expires_at: float | None) -> datetime | None:
    return None if expires_at is None else datetime.fromtimestamp(expires_at, tz=timezone.utc)


def _chunks(items: list[Any], size: int) -> Iterable[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


async def _write(
    conn: aiosqlite.Connection,
    ns: str,
    name: str,
    key: str,
    data: bytes,
    ttl: float | None,
    if_version: Version | None,
    if_absent: bool,
) -> Version:
    """One conditional or plain write, as one statement on ``conn``."""
    now = time.time()
    version = new_version()
    text = data.decode("utf-8")
    expires = _expiry(ttl, now)
    if if_version is not None:
        rows = await conn.execute_fetchall(
            q.UPDATE_IF_VERSION, (text, version, expires, now, ns, key, if_version, now)
        )
        if not rows:
            raise ConflictError("version mismatch", backend=name, operation="save", key=key)
    elif if_absent:
        rows = await conn.execute_fetchall(
            q.INSERT_IF_ABSENT, (ns, key, text, version, expires, now, now)
        )
        if not rows:
            raise AlreadyExistsError("key already exists", backend=name, operation="save", key=key)
    else:
        await conn.execute_fetchall(q.UPSERT, (ns, key, text, version, expires, now))
    return version


async def _remove(
    conn: aiosqlite.Connection, ns: str, name: str, key: str, if_version: Version | None
) -> bool:
    now = time.time()
    if if_version is not None:
        rows = await conn.execute_fetchall(q.DELETE_IF_VERSION, (ns, key, if_version, now))
        if not rows:
            raise ConflictError("version mismatch", backend=name, operation="delete", key=key)
        return True
    rows = await conn.execute_fetchall(q.DELETE, (ns, key))
    return any(row[0] is None or row[0] > now for row in rows)


async def _batched_op(conn: aiosqlite.Connection, ns: str, name: str, op: WriteOp) -> WriteResult:
    """A conditional write or a delete of a batch; its conflict is its own result."""
    try:
        if op.data is None:
            return await _remove(conn, ns, name, op.key, op.if_version)
        return await _write(conn, ns, name, op.key, op.data, op.ttl, op.if_version, op.if_absent)
    except ConflictError as exc:
        return exc


async def _read_entry(conn: aiosqlite.Connection, store: SqliteStore, key: str) -> Entry | None:
    rows = list(await conn.execute_fetchall(q.GET_ENTRY, (store.namespace, key, time.time())))
    if not rows:
        return None
    text, version, expires_at = rows[0]
    return Entry(key, store.codec.decode(text), Version(version), _as_datetime(expires_at))


class SqliteStore(BaseStore):
    """One namespace: rows of the shared ``polystore_kv`` table with ``ns = namespace``."""

    def __init__(self, backend: SqliteBackend, namespace: str, capabilities: Capabilities) -> None:
        super().__init__(
            f"{backend.name}/{namespace}",
            capabilities,
            retry=backend.retry,
            max_value_bytes=backend.settings.max_value_bytes,
            coalesce=backend.settings.coalesce,
            coalesce_max_batch=backend.settings.coalesce_max_batch,
        )
        self.namespace = namespace
        self._backend = backend

    async def _get_entry(self, key: str) -> Entry | None:
        reader = await self._backend.reader()
        with SqliteErrors(self.name, "get", key):
            return await _read_entry(reader, self, key)

    async def _get(self, key: str) -> JSONValue | None:
        reader = await self._backend.reader()
        with SqliteErrors(self.name, "get", key):
            rows = list(
                await reader.execute_fetchall(q.GET_VALUE, (self.namespace, key, time.time()))
            )
        return self.codec.decode(rows[0][0]) if rows else None

    async def _exists(self, key: str) -> bool:
        reader = await self._backend.reader()
        with SqliteErrors(self.name, "exists", key):
            rows = await reader.execute_fetchall(q.EXISTS, (self.namespace, key, time.time()))
        return bool(rows)

    async def _save(
        self,
        key: str,
        value: JSONValue,
        data: bytes,
        ttl: float | None,
        if_version: Version | None,
        if_absent: bool,
    ) -> Version:
        async with self._backend.writer() as conn:
            with SqliteErrors(self.name, "save", key):
                return await _write(
                    conn, self.namespace, self.name, key, data, ttl, if_version, if_absent
                )

    async def _delete(self, key: str, if_version: Version | None) -> bool:
        async with self._backend.writer() as conn:
            with SqliteErrors(self.name, "delete", key):
                return await _remove(conn, self.namespace, self.name, key, if_version)

    async def _get_many(self, keys: list[str]) -> list[JSONValue | None]:
        reader = await self._backend.reader()
        found: dict[str, JSONValue] = {}
        decode = self.codec.decode
        now = time.time()
        with SqliteErrors(self.name, "get_many"):
            for chunk in _chunks(list(dict.fromkeys(keys)), q.MAX_PARAMS):
                rows = await reader.execute_fetchall(
                    q.get_many_sql(len(chunk)), (self.namespace, now, *chunk)
                )
                for key, text in rows:
                    found[key] = decode(text)
        return [found.get(key) for key in keys]

    async def _save_many(
        self, items: list[tuple[str, JSONValue, bytes]], ttl: float | None
    ) -> list[Version]:
        now = time.time()
        expires = _expiry(ttl, now)
        versions = new_versions(len(items))
        rows = [
            (self.namespace, key, data.decode("utf-8"), version, expires, now)
            for (key, _, data), version in zip(items, versions, strict=True)
        ]
        async with self._backend.writer(transaction=True) as conn:
            with SqliteErrors(self.name, "save_many"):
                await conn.executemany(q.UPSERT, rows)
        return versions

    async def _delete_many(self, keys: list[str]) -> int:
        now = time.time()
        count = 0
        async with self._backend.writer(transaction=True) as conn:
            with SqliteErrors(self.name, "delete_many"):
                for chunk in _chunks(keys, q.MAX_PARAMS):
                    rows = await conn.execute_fetchall(
                        q.delete_many_sql(len(chunk)), (self.namespace, *chunk)
                    )
                    count += sum(1 for (expires,) in rows if expires is None or expires > now)
        return count

    def _may_coalesce(self) -> bool:
        # A batch would wait for the write lock this task's transaction holds.
        return not self._backend.holds_transaction()

    async def _get_entries_batch(self, keys: list[str]) -> list[ReadResult]:
        reader = await self._backend.reader()
        found: dict[str, Entry] = {}
        decode = self.codec.decode
        now = time.time()
        with SqliteErrors(self.name, "get_many"):
            for chunk in _chunks(keys, q.MAX_PARAMS):
                rows = await reader.execute_fetchall(
                    q.get_entries_sql(len(chunk)), (self.namespace, now, *chunk)
                )
                for key, text, version, expires_at in rows:
                    found[key] = Entry(
                        key, decode(text), Version(version), _as_datetime(expires_at)
                    )
        return [found.get(key) for key in keys]

    async def _write_batch(self, ops: list[WriteOp]) -> list[WriteResult]:
        # One transaction, so one commit (one WAL sync) for the whole batch; runs of plain
        # saves go as one executemany (one hop to the connection's thread).
        ns, name = self.namespace, self.name
        results: list[WriteResult] = []
        versions = new_versions(len(ops))
        plain: list[tuple[object, ...]] = []
        async with self._backend.writer(transaction=True) as conn:
            with SqliteErrors(name, "save_many"):
                for op, version in zip(ops, versions, strict=True):
                    if op.data is not None and op.if_version is None and not op.if_absent:
                        now = time.time()
                        text = op.data.decode("utf-8")
                        plain.append((ns, op.key, text, version, _expiry(op.ttl, now), now))
                        results.append(version)
                        continue
                    if plain:
                        await conn.executemany(q.UPSERT, plain)
                        plain = []
                    results.append(await _batched_op(conn, ns, name, op))
                if plain:
                    await conn.executemany(q.UPSERT, plain)
        return results

    async def _scan(self, prefix: str, batch_size: int) -> AsyncIterator[str]:
        reader = await self._backend.reader()
        sql, cursor = q.SCAN_FIRST, prefix
        while True:
            with SqliteErrors(self.name, "scan"):
                rows = list(
                    await reader.execute_fetchall(
                        sql, (self.namespace, cursor, time.time(), batch_size)
                    )
                )
            for (key,) in rows:
                if not key.startswith(prefix):
                    return
                yield key
            if len(rows) < batch_size:
                return
            sql, cursor = q.SCAN_NEXT, rows[-1][0]

    async def _find(self, where: dict[str, Scalar], limit: int | None) -> list[Entry]:
        reader = await self._backend.reader()
        sql, params = q.find_sql(where, time.time(), self.namespace)
        found: list[Entry] = []
        # SQL selects a superset; the limit counts rows that pass the re-check.
        with SqliteErrors(self.name, "find"):
            async with reader.execute(sql, params) as cursor:
                while limit is None or len(found) < limit:
                    rows = list(await cursor.fetchmany(_FIND_PAGE))
                    for key, text, version, expires_at in rows:
                        value = self.codec.decode(text)
                        if matches_where(value, where):
                            entry = Entry(key, value, Version(version), _as_datetime(expires_at))
                            found.append(entry)
                    if len(rows) < _FIND_PAGE:
                        break
        return found if limit is None else found[:limit]

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[DataStoreTransaction]:
        async with self._backend.writer(transaction=True) as conn:
            yield _SqliteTransaction(self, conn)

    async def _health(self) -> Health:
        return await self._backend.health()


class _SqliteTransaction(BaseTransaction):
    """Statements on the writer connection inside ``BEGIN IMMEDIATE``."""

    store: SqliteStore

    def __init__(self, store: SqliteStore, conn: aiosqlite.Connection) -> None:
        super().__init__(store)
        self._conn = conn

    async def _get_entry(self, key: str) -> Entry | None:
        with SqliteErrors(self.store.name, "get", key):
            return await _read_entry(self._conn, self.store, key)

    async def _save(
        self,
        key: str,
        value: JSONValue,
        data: bytes,
        ttl: float | None,
        if_version: Version | None,
        if_absent: bool,
    ) -> Version:
        store = self.store
        with SqliteErrors(store.name, "save", key):
            return await _write(
                self._conn, store.namespace, store.name, key, data, ttl, if_version, if_absent
            )

    async def _delete(self, key: str, if_version: Version | None) -> bool:
        store = self.store
        with SqliteErrors(store.name, "delete", key):
            return await _remove(self._conn, store.namespace, store.name, key, if_version)
