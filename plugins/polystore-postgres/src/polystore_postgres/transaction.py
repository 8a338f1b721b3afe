"""Transactions: one pooled connection between ``BEGIN`` and ``COMMIT``.

The isolation level is the backend's ``isolation`` setting (``serializable`` by
default). When the server reports a serialization failure or a deadlock (SQLSTATE
40001 / 40P01) -- at any statement or at ``COMMIT`` -- nothing was applied and
:class:`~polystore_postgres.errors.SerializationConflictError` (a
:class:`~polystore.ConflictError`) is raised. The context manager cannot re-run the
body for you; ``PostgreSQLStore.run_transaction(work)`` does.

If a statement failed inside the body and the body carried on regardless, the
transaction is rolled back at the end and an error is raised: PostgreSQL would
otherwise turn the ``COMMIT`` into a silent ``ROLLBACK``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from typing import TYPE_CHECKING, Any

from polystore import PolystoreError
from polystore.spi import BaseTransaction, Entry, JSONValue, Version, remaining
from polystore_postgres import ops
from polystore_postgres.errors import (
    DRIVER_ERRORS,
    PostgresErrors,
    PostgresStoreError,
    connection_suspect,
)
from polystore_postgres.sql import TableSQL

if TYPE_CHECKING:
    from polystore_postgres.store import PostgreSQLStore

__all__ = ["PostgresTransaction", "TransactionScope", "transaction_scope"]

_BEGIN = {
    "read_committed": "BEGIN ISOLATION LEVEL READ COMMITTED",
    "repeatable_read": "BEGIN ISOLATION LEVEL REPEATABLE READ",
    "serializable": "BEGIN ISOLATION LEVEL SERIALIZABLE",
}


class TransactionScope:
    """State of one open transaction: whether a statement failed (and left the connection
    suspect), whether it ended."""

    __slots__ = ("failed", "finished", "suspect")

    def __init__(self) -> None:
        self.failed = False
        self.finished = False
        self.suspect = False


@asynccontextmanager
async def transaction_scope(
    store: PostgreSQLStore, conn: Any, operation: str, isolation: str
) -> AsyncIterator[TransactionScope]:
    """``BEGIN`` on ``conn``; ``COMMIT`` on normal exit, ``ROLLBACK`` on an exception.

    Raises:
        SerializationConflictError: The commit conflicted; nothing was applied.
        PostgresUnknownOutcomeError: The connection failed during ``COMMIT``.
        PostgresStoreError: A statement had failed, so everything was rolled back.
    """
    scope = TransactionScope()
    secrets = store.backend.secrets
    with PostgresErrors(store.name, operation, secrets=secrets):
        await conn.execute(_BEGIN[isolation], timeout=remaining(store.timeout))
    try:
        yield scope
    except BaseException as exc:
        scope.finished = True
        await _end(conn, remaining(store.timeout), abandon=scope.suspect or connection_suspect(exc))
        raise
    scope.finished = True
    if scope.failed:
        await _end(conn, remaining(store.timeout), abandon=scope.suspect)
        raise PostgresStoreError(
            "a statement in the transaction failed, so the transaction was rolled back",
            backend=store.name,
            operation="commit",
        )
    with PostgresErrors(store.name, "commit", write=True, secrets=secrets):
        status = await conn.execute("COMMIT", timeout=remaining(store.timeout))
    if status != "COMMIT":
        raise PostgresStoreError(
            f"the server ended the transaction with {status}; nothing was applied",
            backend=store.name,
            operation="commit",
        )


async def _end(conn: Any, timeout: float, *, abandon: bool) -> None:
    """Roll back; or close a connection that may be mid-statement or dead (waiting on it
    could outlast the timeout) and let the server roll back. Nothing to report either way.
    """
    with suppress(*DRIVER_ERRORS):
        if abandon:
            conn.terminate()
        else:
            await conn.execute("ROLLBACK", timeout=timeout)


class PostgresTransaction(BaseTransaction):
    """Reads and writes on the transaction's connection; visible to others at commit."""

    store: PostgreSQLStore

    def __init__(
        self, store: PostgreSQLStore, conn: Any, sql: TableSQL, scope: TransactionScope
    ) -> None:
        super().__init__(store)
        self._conn = conn
        self._sql = sql
        self._scope = scope

    def _check_open(self, operation: str, key: str) -> None:
        if self._scope.finished:
            raise PostgresStoreError(
                "the transaction has ended", backend=self.store.name, operation=operation, key=key
            )

    def _failed(self, exc: BaseException, operation: str, key: str) -> Exception:
        self._scope.failed = True
        self._scope.suspect = self._scope.suspect or connection_suspect(exc)
        return self.store.error(exc, operation, key)

    async def _get_entry(self, key: str) -> Entry | None:
        self._check_open("get", key)
        try:
            return await ops.read_entry(self._conn, self._sql, key, remaining(self.store.timeout))
        except PolystoreError:
            raise
        except DRIVER_ERRORS as exc:
            raise self._failed(exc, "get", key) from exc

    async def _save(
        self,
        key: str,
        value: JSONValue,
        data: bytes,
        ttl: float | None,
        if_version: Version | None,
        if_absent: bool,
    ) -> Version:
        self._check_open("save", key)
        try:
            return await ops.write(
                self._conn,
                self._sql,
                self.store.name,
                key,
                data,
                ttl,
                if_version,
                if_absent,
                remaining(self.store.timeout),
            )
        except PolystoreError:
            raise
        except DRIVER_ERRORS as exc:
            raise self._failed(exc, "save", key) from exc

    async def _delete(self, key: str, if_version: Version | None) -> bool:
        self._check_open("delete", key)
        try:
            return await ops.remove(
                self._conn,
                self._sql,
                self.store.name,
                key,
                if_version,
                remaining(self.store.timeout),
            )
        except PolystoreError:
            raise
        except DRIVER_ERRORS as exc:
            raise self._failed(exc, "delete", key) from exc
