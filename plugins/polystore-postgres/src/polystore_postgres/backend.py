"""``PostgresBackend``: the connection pool, the schema, the expiry sweeper, namespaces."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import Coroutine
from typing import Any

import asyncpg  # type: ignore[import-untyped,unused-ignore]

from polystore import (
    ConfigurationError,
    PolystoreError,
    StoreError,
    StoreUnavailableError,
)
from polystore.spi import (
    BaseBackend,
    Capabilities,
    DataStore,
    DeadlineWatch,
    RetryPolicy,
    remaining,
)
from polystore_postgres.errors import DRIVER_ERRORS, PostgresErrors, connection_suspect, scrub
from polystore_postgres.naming import advisory_lock_key, quote_identifier
from polystore_postgres.partitions import MaintenanceReport, maintain_table
from polystore_postgres.schema import ensure_schema, list_tables
from polystore_postgres.settings import PostgresSettings
from polystore_postgres.sql import TableSQL
from polystore_postgres.standbys import Standbys
from polystore_postgres.store import PostgreSQLStore

__all__ = ["CAPABILITIES", "PostgresBackend"]

logger = logging.getLogger("polystore.postgres")

CAPABILITIES = (
    Capabilities.TTL
    | Capabilities.CAS
    | Capabilities.TRANSACTIONS
    | Capabilities.QUERY
    | Capabilities.SCAN
    | Capabilities.DURABLE
    | Capabilities.SHARED
)


async def _keep_session(conn: Any) -> None:
    """Pool reset hook: polystore leaves no session state behind, so none is reset.

    asyncpg still rolls back an open transaction on release; skipping its default
    ``RESET ALL; UNLISTEN *; ...`` saves one round trip per call.
    """


class PostgresBackend(BaseBackend):
    """A PostgreSQL database; each namespace is one table in the configured schema.

    Args:
        settings: Connection and behaviour options.
        name: The backend's instance name (used in store names and messages).
        pool: An ``asyncpg`` pool to use instead of creating one. The backend never
            closes a pool it was given.
    """

    def __init__(
        self,
        settings: PostgresSettings | None = None,
        *,
        name: str = "postgres",
        pool: Any = None,
    ) -> None:
        super().__init__(name, CAPABILITIES)
        self.settings = settings if settings is not None else PostgresSettings()
        self.timeout = self.settings.timeout
        self.retry: RetryPolicy = self.settings.retry.policy()
        self.secrets: tuple[str, ...] = self.settings.secrets()
        self._pool: Any = pool
        self._owns_pool = pool is None
        self._ready_pool: Any = None
        self._reaper: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[None]] = set()
        # Connections this backend has taken from its own pool and not yet returned.
        self._checked_out = 0
        self._acquire_waits = DeadlineWatch()
        self._pool_limit = self.settings.max_pool_size
        # Only a backend with standbys pays for them: its stores test this for None.
        self.standbys: Standbys | None = (
            Standbys(self.settings, name) if self.settings.replica_urls else None
        )

    def __repr__(self) -> str:
        return (
            f"<PostgresBackend {self.name!r} url={self.settings.display_url!r} "
            f"schema={self.settings.db_schema!r}>"
        )

    @property
    def pool(self) -> Any:
        """The asyncpg pool (``None`` before :meth:`open`)."""
        return self._pool

    # -- lifecycle ------------------------------------------------------------------------

    async def _open(self) -> None:
        if self._pool is None:
            self._pool = await self._create_pool()
        try:
            with PostgresErrors(self.name, "open", secrets=self.secrets):
                async with self._pool.acquire(timeout=self.settings.connect_timeout) as conn:
                    await ensure_schema(conn, self.settings.db_schema)
                if self._owns_pool:
                    await self._open_floor(self._pool)
        except BaseException as exc:
            if self._owns_pool:  # a later open() starts afresh
                pool, self._pool = self._pool, None
                await self._close_pool(pool)
            if isinstance(exc, (ValueError, TypeError)) and not isinstance(exc, PolystoreError):
                # The first connect parses the DSN.
                raise self._invalid_settings(exc) from None
            raise
        if self.standbys is not None:
            try:
                with PostgresErrors(self.name, "open", secrets=self.secrets):
                    await self.standbys.open()
            except (ValueError, TypeError) as exc:
                raise self._invalid_settings(exc) from None
        self._ready_pool = self._pool
        if self.settings.reap_interval is not None:
            self._reaper = asyncio.get_running_loop().create_task(
                self._reap_forever(self.settings.reap_interval)
            )

    async def _create_pool(self) -> Any:
        settings = self.settings
        try:
            kwargs = settings.connect_kwargs()
        except ValueError as exc:
            raise ConfigurationError(scrub(str(exc), self.secrets)) from None
        try:
            with PostgresErrors(self.name, "connect", secrets=self.secrets):
                return await asyncpg.create_pool(
                    # The floor is opened by _open_floor: asyncpg's own floor keeper
                    # reconnects in the background during an outage and logs a warning
                    # with a traceback each time (the "asyncpg.pool" logger).
                    min_size=0,
                    max_size=settings.max_pool_size,
                    reset=_keep_session,
                    **kwargs,
                )
        except (ValueError, TypeError) as exc:
            raise self._invalid_settings(exc) from None

    def _invalid_settings(self, exc: Exception) -> ConfigurationError:
        # A malformed DSN: the driver's message may quote it, password and all.
        return ConfigurationError(
            f"invalid PostgreSQL settings for {self.settings.display_url}: "
            f"{scrub(str(exc), self.secrets)}"
        )

    async def _open_floor(self, pool: Any) -> None:
        """Open ``min_pool_size`` connections now, so the first calls find them ready.

        After an outage, connections are re-opened on demand by the calls that need them,
        within each call's timeout, and failures reach those callers as typed errors.
        """
        wanted = self.settings.min_pool_size
        if pool.get_size() >= wanted:
            return
        # Held at once, so that each is a connection of its own.
        timeout = self.settings.connect_timeout
        conns = await asyncio.gather(
            *(pool.acquire(timeout=timeout) for _ in range(wanted)), return_exceptions=True
        )
        for conn in conns:
            if not isinstance(conn, BaseException):
                await pool.release(conn)
        for conn in conns:
            if isinstance(conn, BaseException):
                raise conn

    async def _close(self) -> None:
        self._ready_pool = None
        tasks = [*self._background, *([self._reaper] if self._reaper is not None else [])]
        self._reaper = None
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._owns_pool and self._pool is not None:
            pool, self._pool = self._pool, None
            await self._close_pool(pool)
        if self.standbys is not None:
            await self.standbys.close()

    async def _close_pool(self, pool: Any) -> None:
        try:
            await asyncio.wait_for(pool.close(), timeout=self.settings.timeout)
        except DRIVER_ERRORS:
            pool.terminate()

    # -- connections ----------------------------------------------------------------------

    async def acquire(self, timeout: float) -> Any:
        """A pooled connection within ``timeout`` seconds, or what is left of the running
        call's budget if that is less (opens the backend if needed).

        Raises:
            StoreUnavailableError: The backend is closed.
            TimeoutError: Every connection stayed in use until the deadline.
        """
        pool = self._ready_pool
        if pool is None:
            await self.open()
            pool = self._ready_pool
            if pool is None:
                raise StoreUnavailableError("backend is closed", backend=self.name)
        # The slot is counted before the first await: a burst of callers must not all
        # see the same free slot and skip the bounded path.
        free = self._owns_pool and self._checked_out < self._pool_limit
        self._checked_out += 1
        try:
            if free:
                # A pool slot is free, so acquire cannot queue: at worst it reconnects,
                # which the call's own deadline (polystore.timeouts) cuts short. Skip the
                # cost of arming a timer.
                return await pool.acquire()
            # Every connection is out: wait, bounded by one timer shared by all waiters.
            return await self._acquire_waits.wait(pool.acquire(), remaining(timeout))
        except BaseException:
            self._checked_out -= 1
            raise

    async def release(self, conn: Any, *, discard: bool = False) -> None:
        """Return a connection to the pool; a broken or suspect one is closed, never reused.

        Args:
            conn: The connection from :meth:`acquire`.
            discard: Close it instead (after a timeout, a lost connection or a cancel:
                waiting for it to settle could outlast the caller's timeout).
        """
        pool = self._pool
        if conn is None or pool is None:
            return
        if discard:
            with contextlib.suppress(*DRIVER_ERRORS):  # it may be closed already
                conn.terminate()
        try:
            # No timeout: only a cancelling connection makes release wait, and such a
            # connection is suspect, so it was terminated above.
            await pool.release(conn)
        except DRIVER_ERRORS as exc:  # the pool has already discarded the connection
            logger.debug("releasing a connection failed: %s", scrub(str(exc), self.secrets))
        finally:
            self._checked_out -= 1  # only now is the slot back in the pool's queue

    def spawn(self, work: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """Run ``work`` in the background until it ends or the backend closes."""
        task = asyncio.get_running_loop().create_task(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    def _make_store(self, namespace: str) -> DataStore:
        return PostgreSQLStore(self, namespace, CAPABILITIES)

    # -- expiry sweeper -------------------------------------------------------------------

    async def reap_expired(self, *, max_rows_per_table: int | None = None) -> int:
        """Delete expired rows of every namespace in the schema, bounded per table.

        Args:
            max_rows_per_table: Most rows removed from one table in this sweep;
                ``reap_batch`` when omitted.

        Returns:
            How many rows were removed.
        """
        limit = max_rows_per_table or self.settings.reap_batch
        schema = self.settings.db_schema
        timeout = self.settings.timeout
        total = 0
        conn = await self._acquire_for("reap")
        try:
            with PostgresErrors(self.name, "reap", secrets=self.secrets):
                for table in await list_tables(conn, schema):
                    statement = TableSQL(schema, table).reap
                    status: str = await conn.execute(statement, limit, timeout=timeout)
                    total += int(status.rsplit(" ", 1)[-1])
        finally:
            await self.release(conn)
        return total

    async def maintain(self, *, today: dt.date | None = None) -> MaintenanceReport:
        """Create the month parts due and detach expired ones in every range-partitioned
        namespace table of the schema (``polystore maintain`` runs this).

        Args:
            today: The current day (UTC when omitted).

        Returns:
            What was created and detached; empty when ``partitioning`` is not by range.
        """
        report = MaintenanceReport()
        partitioning = self.settings.partitioning
        if partitioning is None or partitioning.by != "range":
            return report
        day = today or dt.datetime.now(dt.timezone.utc).date()
        schema = self.settings.db_schema
        conn = await self._acquire_for("maintain")
        try:
            with PostgresErrors(self.name, "maintain", secrets=self.secrets):
                for table in await list_tables(conn, schema):
                    kind = await conn.fetchval(
                        "SELECT partstrat::text FROM pg_partitioned_table WHERE partrelid = "
                        "to_regclass($1)",
                        f"{quote_identifier(schema)}.{quote_identifier(table)}",
                    )
                    if kind != "r":
                        continue
                    async with conn.transaction():
                        await conn.execute(
                            "SELECT pg_advisory_xact_lock($1)", advisory_lock_key(schema)
                        )
                        done = await maintain_table(conn, schema, table, partitioning, day)
                    report.created.extend(done.created)
                    report.detached.extend(done.detached)
        finally:
            await self.release(conn)
        return report

    async def _reap_forever(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                removed = await self.reap_expired()
            except StoreError as exc:
                logger.warning("expiry sweep of %s failed: %s", self.name, exc)
            else:
                if removed:
                    logger.debug("expiry sweep of %s removed %d rows", self.name, removed)

    async def _acquire_for(self, operation: str) -> Any:
        with PostgresErrors(self.name, operation, secrets=self.secrets):
            return await self.acquire(remaining(self.settings.timeout))

    # -- health ---------------------------------------------------------------------------

    async def _ping(self) -> str:
        conn = await self._acquire_for("health")
        failure: BaseException | None = None
        try:
            with PostgresErrors(self.name, "health", secrets=self.secrets):
                await conn.fetchval("SELECT 1", timeout=remaining(self.settings.timeout))
                # "15.20 (Debian ...)": get_server_version() reads 15.20 as 15.0.20.
                version = conn.get_settings().server_version.split(" ", 1)[0]
        except BaseException as exc:
            failure = exc
            raise
        finally:
            # A connection that timed out is closed, not released: releasing it would
            # wait for the server to cancel the statement, past the timeout.
            await self.release(conn, discard=connection_suspect(failure))
        return f"PostgreSQL {version} at {self.settings.display_url}"
