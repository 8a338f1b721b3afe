"""Reads on streaming standbys, with read-your-writes.

A backend with ``replica_urls`` keeps one small pool per standby. After each write it
sends, the backend asks the primary where its WAL ends (``pg_current_wal_lsn()``, on the
connection that wrote, after the commit: an LSN read inside the writing statement would
precede the commit record). A read goes to a standby only once that standby has replayed
at least this far (``pg_last_wal_replay_lsn()``), so a process never reads a value older
than one it wrote; otherwise it goes to the primary.

Cheap on purpose: each standby's replay position is cached and asked again only when a
read needs a later one (or, with ``max_replica_lag``, when the cached lag is older than
half that bound), on the connection the read then uses. A store without ``replica_urls``
never reaches this module.

Failures: a standby that cannot be reached is left alone for :data:`RETRY_AFTER` seconds
while reads go to the primary; a standby gets at most half of what is left of a call's
budget, so a frozen standby leaves time to read on the primary. When the primary cannot be
reached, a read goes to a standby that has replayed what this process wrote.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import asyncpg  # type: ignore[import-untyped,unused-ignore]
import orjson

from polystore import StoreUnavailableError
from polystore.spi import JSONValue, redact_url, remaining
from polystore_postgres.errors import DRIVER_ERRORS, scrub

if TYPE_CHECKING:
    from polystore_postgres.settings import PostgresSettings
    from polystore_postgres.store import PostgreSQLStore

__all__ = ["RETRY_AFTER", "Standby", "Standbys"]

T = TypeVar("T")
Work = Callable[[Any, float], Awaitable[T]]

logger = logging.getLogger("polystore.postgres")

RETRY_AFTER = 1.0
"""Seconds a standby that could not be reached is skipped before it is tried again."""

_UNKNOWN = 2**64  # a write whose WAL position could not be read: only the primary is safe
_CURRENT_LSN = "SELECT pg_current_wal_lsn() - '0/0'::pg_lsn"
_REPLAY = (
    "SELECT pg_last_wal_replay_lsn() - '0/0'::pg_lsn, "
    "CASE WHEN pg_last_wal_receive_lsn() IS NOT DISTINCT FROM pg_last_wal_replay_lsn() "
    "THEN 0 ELSE extract(epoch FROM now() - pg_last_xact_replay_timestamp()) END"
)


async def _keep_session(conn: Any) -> None:
    """Pool reset hook: no session state to reset (see the backend's)."""


class _Miss:
    """What :meth:`Standbys._try` returns when the standby cannot answer."""


_MISS = _Miss()


class Standby:
    """One standby: its pool, its cached replay position and lag, and whether it is down."""

    __slots__ = ("checked_at", "down_until", "kwargs", "label", "lag", "pool", "reads", "replayed")

    def __init__(self, label: str, kwargs: dict[str, Any]) -> None:
        self.label = label
        self.kwargs = kwargs
        self.pool: Any = None
        self.replayed = -1  # bytes of WAL replayed, as last seen
        self.lag = 0.0  # seconds behind the primary, as last seen
        self.checked_at = float("-inf")
        self.down_until = 0.0
        self.reads = 0  # reads answered here

    def __repr__(self) -> str:
        return f"<Standby {self.label} replayed={self.replayed} lag={self.lag:g}s>"

    async def refresh(self, conn: Any, timeout: float) -> None:
        """Read the standby's replay position and lag on ``conn``."""
        row = await conn.fetchrow(_REPLAY, timeout=timeout)
        # NULL: not a standby (any more); never assume it holds this process's writes.
        self.replayed = -1 if row[0] is None else int(row[0])
        self.lag = float(row[1] or 0.0)
        self.checked_at = time.monotonic()


class Standbys:
    """The standbys of one backend and the WAL position its writes have reached.

    Args:
        settings: The backend's settings (``replica_urls`` must not be empty).
        backend_name: For messages.
    """

    def __init__(self, settings: PostgresSettings, backend_name: str) -> None:
        self.backend_name = backend_name
        self.read_from: Literal["primary", "replica"] = settings.read_from
        self.read_your_writes = settings.read_your_writes
        self.max_lag = settings.max_replica_lag
        self._recheck = None if self.max_lag is None else min(self.max_lag / 2, 1.0)
        self.secrets = settings.secrets()
        self.max_pool_size = settings.max_pool_size
        self.members = [
            Standby(redact_url(url.get_secret_value()), settings.standby_connect_kwargs(url))
            for url in settings.replica_urls
        ]
        self.written = 0  # WAL position after this backend's latest acknowledged write
        self._epoch = 0  # bumped whenever a write's position could not be read
        self._turn = itertools.count()

    # -- lifecycle ------------------------------------------------------------------------

    async def open(self) -> None:
        """Create the pools; no connection is made yet (a standby may be down at start)."""
        for standby in self.members:
            if standby.pool is None:
                standby.pool = await asyncpg.create_pool(
                    min_size=0, max_size=self.max_pool_size, reset=_keep_session, **standby.kwargs
                )

    async def close(self) -> None:
        """Close the pools (terminating them when a standby does not answer)."""
        for standby in self.members:
            pool, standby.pool = standby.pool, None
            if pool is None:
                continue
            try:
                await pool.close()
            except DRIVER_ERRORS:
                pool.terminate()

    # -- writes ---------------------------------------------------------------------------

    async def note_write(self, conn: Any, timeout: float) -> None:
        """Remember how far the primary's WAL reached once a write on ``conn`` committed.

        When it cannot be read, reads go to the primary until a later write's can.
        """
        if not self.read_your_writes:
            return
        epoch = self._epoch
        try:
            lsn = int(await conn.fetchval(_CURRENT_LSN, timeout=timeout))
        except DRIVER_ERRORS as exc:
            logger.debug("reading the WAL position after a write failed: %s", exc)
            self._epoch += 1
            self.written = _UNKNOWN
            return
        if self.written == _UNKNOWN:
            # Only a position read after the failure covers the write it failed for.
            if epoch == self._epoch:
                self.written = lsn
        elif lsn > self.written:
            self.written = lsn

    # -- reads ----------------------------------------------------------------------------

    async def read(
        self, store: PostgreSQLStore, operation: str, key: str | None, work: Work[T]
    ) -> T:
        """``work(conn, timeout)`` on a standby that has this process's writes, else on the
        primary; on a standby after all when the primary cannot be reached."""
        timeout = store.timeout
        if self.read_from == "replica":
            for standby in self._rotation():
                result = await self._try(standby, work, timeout, wait=False)
                if not isinstance(result, _Miss):
                    return result
        try:
            async with store.primary_call(operation, key) as call:
                return await work(call.conn, call.remaining())
        except StoreUnavailableError:
            for standby in self._rotation():
                result = await self._try(standby, work, timeout, wait=True)
                if not isinstance(result, _Miss):
                    return result
            raise

    async def read_many(
        self, store: PostgreSQLStore, statement: str, keys: list[str], size: int
    ) -> dict[str, JSONValue]:
        """``{key: value}`` of the live ``keys`` (distinct), ``size`` keys per statement."""
        found: dict[str, JSONValue] = {}

        async def work(conn: Any, timeout: float) -> None:
            deadline = time.monotonic() + timeout
            found.clear()  # a standby that failed part-way may have filled some
            for start in range(0, len(keys), size):
                chunk = keys[start : start + size]
                for row in await conn.fetch(statement, chunk, timeout=_left(deadline)):
                    found[row[0]] = orjson.loads(row[1])

        await self.read(store, "get_many", None, work)
        return found

    def _rotation(self) -> list[Standby]:
        members = self.members
        now = time.monotonic()
        start = next(self._turn) % len(members)
        turned = members[start:] + members[:start]
        return [standby for standby in turned if standby.down_until <= now]

    def _fresh_enough(self, standby: Standby, *, wait: bool) -> bool:
        need = self.written if self.read_your_writes else -1
        if standby.replayed < need:
            return False
        if self.max_lag is None or wait:
            return True
        recheck = self._recheck if self._recheck is not None else 0.0
        return standby.lag <= self.max_lag and time.monotonic() - standby.checked_at < recheck

    async def _try(
        self, standby: Standby, work: Work[T], timeout: float, *, wait: bool
    ) -> T | _Miss:
        """Run ``work`` on ``standby`` if it is fresh enough, else return :data:`_MISS`.
        With ``wait``, keep asking until it is, within the budget."""
        pool = standby.pool
        if pool is None:
            return _MISS
        # Half of what is left, so that a frozen standby leaves time for the primary.
        budget = remaining(timeout) if wait else remaining(timeout) / 2
        deadline = time.monotonic() + budget
        conn = None
        try:
            # An idle connection is handed over at once: no timer to arm. Opening a new
            # one may hang on a frozen standby, so that waits within the budget.
            if pool.get_idle_size():
                conn = await pool.acquire()
            else:
                conn = await pool.acquire(timeout=budget)
            while not self._fresh_enough(standby, wait=wait):
                await standby.refresh(conn, _left(deadline))
                if self._fresh_enough(standby, wait=wait):
                    break
                if self.max_lag is not None and standby.lag > self.max_lag and not wait:
                    return _MISS
                if not wait or time.monotonic() >= deadline:
                    return _MISS
                await _pause(deadline)
            result = await work(conn, _left(deadline))
        except DRIVER_ERRORS as exc:
            if not _statement_error(exc):
                self._down(standby, exc)
            elif conn is not None:  # e.g. a table it has not replayed yet: ask the primary
                return _MISS
            if conn is not None:
                with contextlib.suppress(*DRIVER_ERRORS):
                    conn.terminate()
            return _MISS
        finally:
            if conn is not None:
                with contextlib.suppress(*DRIVER_ERRORS):
                    await pool.release(conn)
        standby.reads += 1
        return result

    def _down(self, standby: Standby, exc: BaseException) -> None:
        standby.down_until = time.monotonic() + RETRY_AFTER
        standby.checked_at = float("-inf")
        logger.info(
            "standby %s of %s is skipped for %g s: %s",
            standby.label,
            self.backend_name,
            RETRY_AFTER,
            scrub(str(exc) or type(exc).__name__, self.secrets),
        )


def _statement_error(exc: BaseException) -> bool:
    """Whether ``exc`` is about the statement, not about reaching the standby."""
    if not isinstance(exc, asyncpg.PostgresError):
        return False
    state: str = exc.sqlstate or ""
    return not state.startswith(("08", "57P", "53"))


def _left(deadline: float) -> float:
    return max(deadline - time.monotonic(), 0.001)


async def _pause(deadline: float) -> None:
    await asyncio.sleep(min(0.01, _left(deadline)))
