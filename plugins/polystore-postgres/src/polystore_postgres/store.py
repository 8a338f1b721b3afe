"""``PostgreSQLStore``: one namespace, one table.

Every call is one statement on a pooled connection (one round trip); batches are one
statement per chunk of ``batch_rows``; chunked batches run in one transaction.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import TYPE_CHECKING, Any, TypeVar

import orjson

from polystore import StoreError, UnsupportedOperationError
from polystore.spi import (
    BaseStore,
    Capabilities,
    DataStoreTransaction,
    Entry,
    Health,
    JSONValue,
    ReadResult,
    Scalar,
    Version,
    WriteOp,
    WriteResult,
    matches_where,
    new_versions,
    remaining,
)
from polystore_postgres import coalesced, ops
from polystore_postgres.call import Call
from polystore_postgres.errors import (
    DRIVER_ERRORS,
    PostgresErrors,
    SerializationConflictError,
    connection_suspect,
)
from polystore_postgres.partitions import check_range_key
from polystore_postgres.query_index import build_query_index
from polystore_postgres.schema import ensure_namespace
from polystore_postgres.sql import TableSQL
from polystore_postgres.transaction import PostgresTransaction, transaction_scope

if TYPE_CHECKING:
    from polystore_postgres.backend import PostgresBackend

__all__ = ["PostgreSQLStore"]

T = TypeVar("T")
_loads = orjson.loads
_INDEX_RETRY_SECONDS = 30.0
_MAX_FIND_PAGE = 1000
logger = logging.getLogger("polystore.postgres")


class PostgreSQLStore(BaseStore):
    """One namespace of a :class:`~polystore_postgres.PostgresBackend`: rows of one table.

    Values are stored as their exact JSON text (``json`` column), so every JSON value
    round-trips exactly. JSON numbers decode to ``int``/``float``: store money as
    strings (a typed collection with ``Decimal`` fields does this), never as floats.
    """

    def __init__(self, backend: PostgresBackend, namespace: str, capabilities: Capabilities):
        settings = backend.settings
        super().__init__(
            f"{backend.name}/{namespace}",
            capabilities,
            retry=backend.retry,
            max_value_bytes=settings.max_value_bytes,
            timeout=settings.timeout,
            # Not with standbys (reads go to them) or month keys (checked per write).
            coalesce=settings.coalesce
            and backend.standbys is None
            and (settings.partitioning is None or settings.partitioning.by != "range"),
            coalesce_max_batch=settings.coalesce_max_batch,
        )
        self.namespace = namespace
        self.backend = backend
        self.timeout = settings.timeout
        self._sql: TableSQL | None = None
        self._setup_lock: asyncio.Lock | None = None
        self._tx_tasks: set[asyncio.Task[Any]] = set()
        # "off": never build; otherwise check (and build if needed) on the first find.
        self._index_ready = settings.query_index == "off"
        self._index_task: asyncio.Task[None] | None = None
        self._index_retry_at = 0.0
        self._standbys = backend.standbys
        partitioning = settings.partitioning
        self._month_keys = partitioning is not None and partitioning.by == "range"

    @property
    def query_index_ready(self) -> bool:
        """Whether ``find`` is known to be served by the GIN index (or it is turned off)."""
        return self._index_ready

    @property
    def table(self) -> str | None:
        """The qualified table name, once the table is known to exist."""
        return None if self._sql is None else self._sql.qualified

    def error(
        self,
        exc: BaseException,
        operation: str,
        key: str | None = None,
        *,
        write: bool = False,
    ) -> Exception:
        """The polystore error for a driver exception of this store (for calls that are
        not a ``with`` block)."""
        errors = PostgresErrors(
            self.name, operation, key, write=write, secrets=self.backend.secrets
        )
        return errors.translate(exc)

    def _call(self, operation: str, key: str | None = None, *, write: bool = False) -> Call:
        return Call(self, operation, key, write)

    def primary_call(self, operation: str, key: str | None = None) -> Call:
        """A read call on the primary (for :class:`~polystore_postgres.standbys.Standbys`)."""
        return Call(self, operation, key, False)

    async def prepare(self) -> TableSQL:
        """Create the namespace table if needed (under an advisory lock); idempotent."""
        if self._sql is not None:
            return self._sql
        if self._setup_lock is None:
            self._setup_lock = asyncio.Lock()
        async with self._setup_lock:
            if self._sql is None:
                settings = self.backend.settings
                async with self._call("prepare") as call:
                    table = await ensure_namespace(
                        call.conn,
                        settings.db_schema,
                        self.namespace,
                        query_index=settings.query_index == "eager",
                        partitioning=settings.partitioning,
                    )
                    if self._standbys is not None:  # reads wait for the table's creation
                        await self._standbys.note_write(call.conn, call.remaining())
                self._sql = TableSQL(settings.db_schema, table)
        return self._sql

    def _check_not_in_transaction(self, operation: str) -> None:
        if self._tx_tasks and asyncio.current_task() in self._tx_tasks:
            raise UnsupportedOperationError(
                "this task holds an open transaction on the store; write through the "
                "transaction object instead",
                backend=self.name,
                operation=operation,
            )

    # -- reads ----------------------------------------------------------------------------

    async def _get(self, key: str) -> JSONValue | None:
        sql = self._sql or await self.prepare()
        if self._standbys is not None:
            row = await self._standbys.read(
                self, "get", key, lambda conn, t: conn.fetchrow(sql.get_value, key, timeout=t)
            )
            return None if row is None else _loads(row[0])
        async with self._call("get", key) as call:
            row = await call.conn.fetchrow(sql.get_value, key, timeout=call.remaining())
        return None if row is None else _loads(row[0])

    async def _get_entry(self, key: str) -> Entry | None:
        sql = self._sql or await self.prepare()
        if self._standbys is not None:
            return await self._standbys.read(
                self, "get", key, lambda conn, t: ops.read_entry(conn, sql, key, t)
            )
        async with self._call("get", key) as call:
            return await ops.read_entry(call.conn, sql, key, call.remaining())

    async def _exists(self, key: str) -> bool:
        sql = self._sql or await self.prepare()
        if self._standbys is not None:
            found = await self._standbys.read(
                self, "exists", key, lambda conn, t: conn.fetchval(sql.exists, key, timeout=t)
            )
            return found is not None
        async with self._call("exists", key) as call:
            found = await call.conn.fetchval(sql.exists, key, timeout=call.remaining())
        return found is not None

    async def _get_many(self, keys: list[str]) -> list[JSONValue | None]:
        sql = self._sql or await self.prepare()
        unique = list(dict.fromkeys(keys))
        size = self.backend.settings.batch_rows
        found: dict[str, JSONValue] = {}
        if self._standbys is not None:
            found = await self._standbys.read_many(self, sql.get_many, unique, size)
            return [found.get(key) for key in keys]
        async with self._call("get_many") as call:
            for start in range(0, len(unique), size):
                rows = await call.conn.fetch(
                    sql.get_many, unique[start : start + size], timeout=call.remaining()
                )
                for row in rows:
                    found[row[0]] = _loads(row[1])
        return [found.get(key) for key in keys]

    # -- writes ---------------------------------------------------------------------------

    async def _save(
        self,
        key: str,
        value: JSONValue,
        data: bytes,
        ttl: float | None,
        if_version: Version | None,
        if_absent: bool,
    ) -> Version:
        self._check_not_in_transaction("save")
        if self._month_keys:
            check_range_key(key, self.name)
        sql = self._sql or await self.prepare()
        async with self._call("save", key, write=True) as call:
            return await ops.write(
                call.conn, sql, self.name, key, data, ttl, if_version, if_absent, call.remaining()
            )

    async def _delete(self, key: str, if_version: Version | None) -> bool:
        self._check_not_in_transaction("delete")
        sql = self._sql or await self.prepare()
        async with self._call("delete", key, write=True) as call:
            return await ops.remove(call.conn, sql, self.name, key, if_version, call.remaining())

    async def _save_many(
        self, items: list[tuple[str, JSONValue, bytes]], ttl: float | None
    ) -> list[Version]:
        self._check_not_in_transaction("save_many")
        if self._month_keys:
            for key, _, _ in items:
                check_range_key(key, self.name)
        sql = self._sql or await self.prepare()
        count = len(items)
        versions = new_versions(count)
        keys, _, datas = zip(*items, strict=True)
        texts = [data.decode("utf-8") for data in datas]
        opaque = {key for key, data in zip(keys, datas, strict=True) if ops.holds_nul(data)}
        # Rows in key order, so concurrent batches lock them in one order and cannot
        # deadlock (sorting here costs less than an ORDER BY in the statement).
        order = sorted(range(count), key=keys.__getitem__)
        size = self.backend.settings.batch_rows
        async with self._batch("save_many", -(-count // size)) as call:
            for start in range(0, count, size):
                chunk = order[start : start + size]
                chunk_keys = [keys[i] for i in chunk]
                await call.conn.execute(
                    sql.save_many,
                    chunk_keys,
                    [texts[i] for i in chunk],
                    [versions[i] for i in chunk],
                    ttl,
                    [key for key in chunk_keys if key in opaque] if opaque else [],
                    timeout=call.remaining(),
                )
        return versions

    async def _delete_many(self, keys: list[str]) -> int:
        self._check_not_in_transaction("delete_many")
        sql = self._sql or await self.prepare()
        ordered = sorted(keys)
        size = self.backend.settings.batch_rows
        chunks = [ordered[start : start + size] for start in range(0, len(ordered), size)]
        count = 0
        async with self._batch("delete_many", len(chunks)) as call:
            for chunk in chunks:
                rows = await call.conn.fetch(sql.delete_many, chunk, timeout=call.remaining())
                count += sum(1 for row in rows if row[0])
        return count

    @asynccontextmanager
    async def _batch(self, operation: str, chunks: int) -> AsyncIterator[Call]:
        """A call for a batch: one statement, or a transaction around several chunks."""
        if chunks <= 1:
            async with self._call(operation, write=True) as call:
                yield call
            return
        async with self._call(operation, write=False) as call:
            async with transaction_scope(self, call.conn, operation, "read_committed"):
                yield call
            if self._standbys is not None:
                await self._standbys.note_write(call.conn, call.remaining())

    def batch_call(self, operation: str, chunks: int) -> AbstractAsyncContextManager[Call]:
        """A call for a batch of writes: one statement, or a transaction around ``chunks``
        statements (more than one)."""
        return self._batch(operation, chunks)

    # -- coalesced single-key calls (see polystore.coalesce) --------------------------------

    def _may_coalesce(self) -> bool:
        # A transaction holder's own writes through the store are refused, not batched.
        return not (self._tx_tasks and asyncio.current_task() in self._tx_tasks)

    async def _get_entries_batch(self, keys: list[str]) -> list[ReadResult]:
        sql = self._sql or await self.prepare()
        return await coalesced.read_batch(self, sql, keys)

    async def _write_batch(self, batch: list[WriteOp]) -> list[WriteResult]:
        sql = self._sql or await self.prepare()
        return await coalesced.write_batch(self, sql, batch)

    # -- scan and find --------------------------------------------------------------------

    async def _scan(self, prefix: str, batch_size: int) -> AsyncIterator[str]:
        sql = self._sql or await self.prepare()
        upper = ops.prefix_upper_bound(prefix)
        cursor, first = prefix, True
        while True:
            if upper is None:
                statement = sql.scan_first if first else sql.scan_next
                args: tuple[Any, ...] = (cursor, batch_size)
            else:
                statement = sql.scan_range_first if first else sql.scan_range_next
                args = (cursor, batch_size, upper)
            rows = await self._read_rows("scan", statement, *args)
            for row in rows:
                key: str = row[0]
                if not key.startswith(prefix):
                    return
                yield key
            if len(rows) < batch_size:
                return
            cursor, first = rows[-1][0], False

    async def _find(self, where: dict[str, Scalar], limit: int | None) -> list[Entry]:
        sql = self._sql or await self.prepare()
        if not self._index_ready:
            self._want_query_index(sql)
        document = ops.containment_filter(where)
        if limit is None:
            # No retry here: BaseStore.find retries the whole call.
            rows = await self._read_rows("find", sql.find_all, document, retry=False)
            return [entry for entry in map(_entry, rows) if matches_where(entry.value, where)]
        found: list[Entry] = []
        after, page = "", limit
        while len(found) < limit:
            rows = await self._read_rows("find", sql.find_page, document, after, page, retry=False)
            for entry in map(_entry, rows):
                if matches_where(entry.value, where):
                    found.append(entry)
                    if len(found) == limit:
                        break
            if len(rows) < page:
                break
            # Rows the exact check dropped: read on, in growing pages.
            after, page = rows[-1][0], min(page * 2, _MAX_FIND_PAGE)
        return found

    def _want_query_index(self, sql: TableSQL) -> None:
        task = self._index_task
        if (task is None or task.done()) and time.monotonic() >= self._index_retry_at:
            self._index_task = self.backend.spawn(self._build_query_index(sql))

    async def _build_query_index(self, sql: TableSQL) -> None:
        try:
            async with self._call("query_index") as call:
                self._index_ready = await build_query_index(call.conn, sql)
        except StoreError as exc:
            logger.warning("building the find index of %s failed: %s", self.name, exc)
        finally:
            if not self._index_ready:
                self._index_retry_at = time.monotonic() + _INDEX_RETRY_SECONDS

    async def _read_rows(
        self, operation: str, statement: str, *args: Any, retry: bool = True
    ) -> list[Any]:
        async def fetch() -> list[Any]:
            if self._standbys is not None:
                return await self._standbys.read(
                    self, operation, None, lambda conn, t: conn.fetch(statement, *args, timeout=t)
                )
            async with self._call(operation) as call:
                rows: list[Any] = await call.conn.fetch(statement, *args, timeout=call.remaining())
                return rows

        try:
            return await fetch()
        except StoreError as exc:
            if not retry:
                raise
            return await self.retry_policy.retry(exc, fetch)

    # -- transactions ---------------------------------------------------------------------

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[DataStoreTransaction]:
        sql = self._sql or await self.prepare()
        isolation = self.backend.settings.isolation
        task = asyncio.current_task()
        # Not a _Call: errors of the body pass through untranslated (the transaction's
        # own statements translate theirs).
        try:
            conn = await self.backend.acquire(self.timeout)
        except DRIVER_ERRORS as exc:
            raise self.error(exc, "transaction") from exc
        try:
            async with transaction_scope(self, conn, "transaction", isolation) as scope:
                if task is not None:
                    self._tx_tasks.add(task)
                try:
                    yield PostgresTransaction(self, conn, sql, scope)
                finally:
                    if task is not None:
                        self._tx_tasks.discard(task)
            if self._standbys is not None:
                await self._standbys.note_write(conn, remaining(self.timeout))
        except BaseException as exc:
            await self.backend.release(conn, discard=connection_suspect(exc))
            raise
        await self.backend.release(conn)

    async def run_transaction(
        self,
        work: Callable[[DataStoreTransaction], Awaitable[T]],
        *,
        attempts: int | None = None,
    ) -> T:
        """Run ``work(tx)`` in a transaction, re-running it on serialization failures.

        ``work`` may run more than once, so it must have no effects outside the
        transaction. Other errors (including a CAS :class:`ConflictError`) propagate at
        once.

        Args:
            work: The unit of work; its result is returned.
            attempts: Most runs; the backend's ``transaction_attempts`` when omitted.

        Raises:
            SerializationConflictError: Every attempt conflicted.
        """
        limit = attempts if attempts is not None else self.backend.settings.transaction_attempts
        attempt = 0
        while True:
            attempt += 1
            try:
                async with self.transaction() as tx:
                    return await work(tx)
            except SerializationConflictError:
                if attempt >= limit:
                    raise
            await asyncio.sleep(self.retry_policy.delay(attempt) if limit > 1 else 0)

    # -- housekeeping ---------------------------------------------------------------------

    async def reap_expired(self, *, max_rows: int | None = None) -> int:
        """Delete up to ``max_rows`` expired rows of this namespace now; return how many.

        Expired rows are never returned either way; this only reclaims space.
        """
        sql = self._sql or await self.prepare()
        limit = max_rows if max_rows is not None else self.backend.settings.reap_batch
        async with self._call("reap") as call:
            status: str = await call.conn.execute(sql.reap, limit, timeout=call.remaining())
        return int(status.rsplit(" ", 1)[-1])

    async def _health(self) -> Health:
        return await self.backend.health()


def _entry(row: Any) -> Entry:
    return Entry(row[0], _loads(row[1]), Version(row[2]), row[3])
