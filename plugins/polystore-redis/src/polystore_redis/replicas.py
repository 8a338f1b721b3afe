"""Reads on replicas (``read_from = "replica"``), falling back to the primary.

A :class:`ReplicaReads` stands where a store's reads would find the primary's client and
answers the few calls reads make (``execute_command``, ``evalsha``/``script_load`` for the
read scripts, ``scan``, non-transactional ``pipeline``). Each call goes to the next replica
in turn; a replica that does not answer within half of what is left of the call's timeout
(refused, reset, timed out, loading, or ``MASTERDOWN`` because it lost its primary) is
skipped for :data:`RETRY_AFTER` seconds and the call is sent to the primary, so a read
never fails because of a replica.

Replication is asynchronous: a replica may not have a write yet when it is read, even a
write this process just made. Only reads that tolerate staleness belong here; writes,
transactions and compare-and-set always use the primary, and a store reading from
replicas does not declare ``CAS`` (a version read on a replica may be old).
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from redis import exceptions as rx

from polystore.spi import remaining

__all__ = ["RETRY_AFTER", "ReplicaReads"]

RETRY_AFTER = 1.0
"""Seconds a replica that did not answer is left aside before it is tried again."""

T = TypeVar("T")


def _replica_down(exc: BaseException) -> bool:
    """Whether ``exc`` says the replica cannot serve reads (the primary still may)."""
    if isinstance(exc, (rx.ConnectionError, rx.TimeoutError, OSError, asyncio.TimeoutError)):
        return True
    return isinstance(exc, rx.ResponseError) and str(exc).startswith(("MASTERDOWN", "LOADING"))


class _Cursor:
    """A ``SCAN`` cursor with the server it belongs to: the next page asks that server."""

    __slots__ = ("client", "value")

    def __init__(self, client: Any, value: int) -> None:
        self.client = client
        self.value = value

    def __bool__(self) -> bool:
        return bool(self.value)


class _Pipeline:
    """Commands queued for one round trip, sent to a replica (or the primary) on execute."""

    def __init__(self, reads: ReplicaReads) -> None:
        self._reads = reads
        self._commands: list[tuple[Any, ...]] = []

    def execute_command(self, *args: Any) -> None:
        self._commands.append(args)

    async def execute(self) -> list[Any]:
        async def run(client: Any) -> list[Any]:
            pipe = client.pipeline(transaction=False)
            for command in self._commands:
                pipe.execute_command(*command)
            replies: list[Any] = await pipe.execute()
            return replies

        return await self._reads.call(run)


class ReplicaReads:
    """The client reads use: replicas in turn, the primary when none answers.

    Args:
        replicas: Clients of the replicas (a Sentinel ``slave_for`` client, or one per
            ``replica_urls`` entry).
        primary: The primary's client.
        timeout: The store's timeout; a replica gets at most half of what is left.
    """

    def __init__(self, replicas: Sequence[Any], primary: Any, timeout: float) -> None:
        self.replicas = list(replicas)
        self.primary = primary
        self._timeout = timeout
        self._down_until = [0.0] * len(self.replicas)
        self._turn = itertools.cycle(range(len(self.replicas)))

    def _next_replica(self) -> int | None:
        now = time.monotonic()
        for _ in self.replicas:
            index = next(self._turn)
            if self._down_until[index] <= now:
                return index
        return None

    async def call(self, read: Callable[[Any], Awaitable[T]]) -> T:
        """``read(client)`` on a replica that answers, else on the primary."""
        while (index := self._next_replica()) is not None:
            try:
                return await asyncio.wait_for(
                    read(self.replicas[index]), remaining(self._timeout) / 2
                )
            except (rx.RedisError, OSError, asyncio.TimeoutError) as exc:  # noqa: PERF203 - one try per replica
                if not _replica_down(exc):
                    raise
                self._down_until[index] = time.monotonic() + RETRY_AFTER
        return await read(self.primary)

    async def execute_command(self, *args: Any) -> Any:
        """One command, on a replica or the primary."""
        return await self.call(lambda client: client.execute_command(*args))

    async def evalsha(self, sha: str, numkeys: int, *args: Any) -> Any:
        """A read-only script (see :mod:`polystore_redis.scripts`) by its SHA."""
        return await self.call(lambda client: client.evalsha(sha, numkeys, *args))

    async def script_load(self, script: str) -> Any:
        """Load ``script`` on every server (a read may go to any of them); its SHA."""
        sha = None
        for client in (*self.replicas, self.primary):
            try:
                sha = await client.script_load(script)
            except (rx.RedisError, OSError) as exc:  # noqa: PERF203 - one load per server
                if not _replica_down(exc) or client is self.primary:
                    raise
        return sha

    async def scan(
        self, cursor: _Cursor | int = 0, match: str | None = None, count: int | None = None
    ) -> tuple[_Cursor, list[bytes]]:
        """One ``SCAN`` page; later pages ask the server that answered the first."""
        if isinstance(cursor, _Cursor):
            value, keys = await cursor.client.scan(cursor=cursor.value, match=match, count=count)
            return _Cursor(cursor.client, value), keys

        async def first(client: Any) -> tuple[_Cursor, list[bytes]]:
            value, keys = await client.scan(cursor=0, match=match, count=count)
            return _Cursor(client, value), keys

        return await self.call(first)

    def pipeline(self, transaction: bool = False) -> _Pipeline:
        """A non-transactional pipeline of reads."""
        if transaction:
            raise ValueError("transactions always run on the primary")
        return _Pipeline(self)
