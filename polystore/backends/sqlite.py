"""The ``sqlite`` backend: an embedded file database, the default when nothing is configured.

Capabilities: TTL, CAS, TRANSACTIONS, QUERY, SCAN, DURABLE, SHARED.

The database runs in WAL mode on two connections, each served by its own thread (so the
event loop never blocks): readers never wait for writers and see only committed data;
writes are serialised through one writer connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Literal

import aiosqlite
from pydantic import BaseModel, ConfigDict, Field

from polystore import StoreUnavailableError, UnsupportedOperationError
from polystore.backends import sqlite_sql as q
from polystore.backends.sqlite_store import SqliteErrors, SqliteStore
from polystore.spi import (
    DEFAULT_MAX_VALUE_BYTES,
    BackendRegistry,
    BackendSpec,
    BaseBackend,
    Capabilities,
    DataStore,
    RetryPolicy,
    RetrySettings,
    hookimpl,
)

__all__ = ["DEFAULT_PATH", "SqliteBackend", "SqliteSettings"]

DEFAULT_PATH = ".polystore/polystore.db"

CAPABILITIES = (
    Capabilities.TTL
    | Capabilities.CAS
    | Capabilities.TRANSACTIONS
    | Capabilities.QUERY
    | Capabilities.SCAN
    | Capabilities.DURABLE
    | Capabilities.SHARED
)


def _ensure_folder(path: str) -> None:
    Path(path).expanduser().parent.mkdir(parents=True, exist_ok=True)


class SqliteSettings(BaseModel):
    """Options of the ``sqlite`` backend."""

    model_config = ConfigDict(extra="forbid")

    plugin: Literal["sqlite"] = "sqlite"
    path: str = Field(default=DEFAULT_PATH, description="Database file; its folder is created.")
    synchronous: Literal["FULL", "NORMAL"] = Field(
        default="FULL",
        description="FULL: a committed write survives power loss; NORMAL: survives a crash "
        "of the application only.",
    )
    busy_timeout: float = Field(default=5.0, gt=0, description="Seconds to wait for a lock.")
    reap_interval: float = Field(default=60.0, gt=0, description="Seconds between expiry sweeps.")
    reap_batch: int = Field(default=1000, ge=1, description="Rows removed per sweep statement.")
    max_value_bytes: int = Field(default=DEFAULT_MAX_VALUE_BYTES, gt=0)
    coalesce: bool = Field(
        default=True,
        description="Send concurrent single-key calls as one batch (one statement for "
        "reads, one transaction and so one commit for writes).",
    )
    coalesce_max_batch: int = Field(default=128, ge=1, description="Calls per batch at most.")
    retry: RetrySettings = Field(default_factory=RetrySettings)


class SqliteBackend(BaseBackend):
    """A SQLite database file holding any number of namespaces."""

    def __init__(self, settings: SqliteSettings, *, name: str = "sqlite") -> None:
        super().__init__(name, CAPABILITIES)
        if settings.path == ":memory:" or settings.path.startswith("file:"):
            msg = "sqlite path must be a file path; use the memory backend for RAM only"
            raise ValueError(msg)
        self.settings = settings
        self.retry: RetryPolicy = settings.retry.policy()
        self._reader: aiosqlite.Connection | None = None
        self._writer: aiosqlite.Connection | None = None
        self._write_lock = asyncio.Lock()
        self._tx_task: asyncio.Task[object] | None = None
        self._reaper: asyncio.Task[None] | None = None

    def __repr__(self) -> str:
        return f"<SqliteBackend {self.name!r} path={self.settings.path!r}>"

    async def _connect(self) -> aiosqlite.Connection:
        conn = await aiosqlite.connect(
            self.settings.path, isolation_level=None, timeout=self.settings.busy_timeout
        )
        await conn.execute("PRAGMA journal_mode=WAL")
        await conn.execute(f"PRAGMA synchronous={self.settings.synchronous}")
        return conn

    async def _open(self) -> None:
        with SqliteErrors(self.name, "open"):
            await asyncio.to_thread(_ensure_folder, self.settings.path)
            self._writer = await self._connect()
            for statement in q.SCHEMA:
                await self._writer.execute(statement)
            self._reader = await self._connect()
        self._reaper = asyncio.get_running_loop().create_task(self._reap_forever())

    async def _close(self) -> None:
        if self._reaper is not None:
            self._reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reaper
        async with self._write_lock:
            for conn in (self._reader, self._writer):
                if conn is not None:
                    await conn.close()
            self._reader = self._writer = None

    async def reader(self) -> aiosqlite.Connection:
        """The connection for reads outside transactions (opens the backend if needed)."""
        if self._reader is None:
            await self.open()
            if self._reader is None:
                raise StoreUnavailableError("backend is closed", backend=self.name)
        return self._reader

    def holds_transaction(self) -> bool:
        """Whether the running task holds an open transaction on the writer connection."""
        task = asyncio.current_task()
        return task is not None and task is self._tx_task

    @asynccontextmanager
    async def writer(self, *, transaction: bool = False) -> AsyncIterator[aiosqlite.Connection]:
        """The writer connection, held exclusively; with ``BEGIN IMMEDIATE`` if asked."""
        task = asyncio.current_task()
        if task is not None and task is self._tx_task:
            raise UnsupportedOperationError(
                "this task holds an open transaction on the store; write through the "
                "transaction object instead",
                backend=self.name,
            )
        if self._writer is None:
            await self.open()
        async with self._write_lock:
            conn = self._writer
            if conn is None:
                raise StoreUnavailableError("backend is closed", backend=self.name)
            if not transaction:
                yield conn
                return
            with SqliteErrors(self.name, "transaction"):
                await conn.execute("BEGIN IMMEDIATE")
            self._tx_task = task
            try:
                yield conn
            except BaseException:
                with SqliteErrors(self.name, "rollback"):
                    await conn.execute("ROLLBACK")
                raise
            else:
                with SqliteErrors(self.name, "commit"):
                    await conn.execute("COMMIT")
            finally:
                self._tx_task = None

    async def reap_expired(self) -> int:
        """Delete expired rows now, in bounded statements; return how many went."""
        total = 0
        while True:
            async with self.writer() as conn:
                with SqliteErrors(self.name, "reap"):
                    cursor = await conn.execute(q.REAP, (time.time(), self.settings.reap_batch))
                    removed = cursor.rowcount
                    await cursor.close()
            total += removed
            if removed < self.settings.reap_batch:
                return total
            await asyncio.sleep(0)

    async def _reap_forever(self) -> None:
        while True:
            await asyncio.sleep(self.settings.reap_interval)
            with contextlib.suppress(StoreUnavailableError):
                await self.reap_expired()

    def _make_store(self, namespace: str) -> DataStore:
        return SqliteStore(self, namespace, CAPABILITIES)

    async def _ping(self) -> str:
        reader = await self.reader()
        with SqliteErrors(self.name, "health"):
            await reader.execute_fetchall("SELECT 1")
        return f"sqlite {sqlite3.sqlite_version} at {self.settings.path}"


@hookimpl
def polystore_register_backends(registry: BackendRegistry) -> None:
    """Register the ``sqlite`` backend."""
    registry.register(
        BackendSpec(
            name="sqlite",
            factory=SqliteBackend,
            settings_model=SqliteSettings,
            capabilities=CAPABILITIES,
            description="embedded SQLite file (WAL); the default",
        )
    )
