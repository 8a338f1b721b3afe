"""A cluster client whose callers wait for a free connection instead of failing at once.

redis-py's ``RedisCluster`` keeps at most ``max_connections`` connections per node and
raises ``MaxConnectionsError`` as soon as a call needs one more; its connection checkout
is synchronous, so it cannot wait. This client lets at most ``max_connections`` calls
(commands or pipelines) run at once and queues the others, each for what is left of its
call's timeout. A call uses at most one connection per node at a time (a pipeline or a
multi-node command one on each node it reaches), so no node's pool is ever exhausted.

The cost: with ``pool_size`` connections per node, at most ``pool_size`` calls are in
flight over the whole cluster, not ``pool_size`` per node.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from contextvars import ContextVar
from typing import Any

from redis import exceptions as rx
from redis.asyncio.cluster import ClusterPipeline, RedisCluster

from polystore.spi import DeadlineWatch, remaining

__all__ = ["WaitingRedisCluster"]

# Set while a call holds its turn: the commands it sends itself (a pipeline resending
# a redirected command) run within that turn instead of waiting for another.
_holding: ContextVar[bool] = ContextVar("polystore_redis_cluster_turn", default=False)


class WaitingRedisCluster(RedisCluster):
    """``RedisCluster`` that queues calls while ``max_connections`` are in flight.

    Args:
        wait_timeout: Seconds a call may wait for its turn before
            ``TimeoutError("No connection available ...")`` (less if the caller's call
            has less of its timeout left).
        **kwargs: Passed to :class:`redis.asyncio.cluster.RedisCluster`
            (``max_connections`` bounds the calls in flight).
    """

    def __init__(self, *, wait_timeout: float, max_connections: int, **kwargs: Any) -> None:
        super().__init__(max_connections=max_connections, **kwargs)
        self.wait_timeout = wait_timeout
        self.max_connections = max_connections
        self._turns = asyncio.Semaphore(max_connections)
        self._waits = DeadlineWatch()  # one timer for every waiting call

    @asynccontextmanager
    async def turn(self) -> AsyncIterator[None]:
        """Hold one of the ``max_connections`` turns for the duration of the block."""
        if _holding.get():
            yield
            return
        if self._turns.locked():
            wait = remaining(self.wait_timeout)
            try:
                await self._waits.wait(self._turns.acquire(), wait)
            except TimeoutError:
                raise rx.TimeoutError(
                    f"No connection available within {wait:.3g}s: "
                    f"{self.max_connections} calls in flight"
                ) from None
        else:
            await self._turns.acquire()  # a free turn: returns at once
        token = _holding.set(True)
        try:
            yield
        finally:
            _holding.reset(token)
            self._turns.release()

    async def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        """Run a command once a turn is free (see :class:`RedisCluster`)."""
        async with self.turn():
            return await super().execute_command(*args, **kwargs)

    def pipeline(self, transaction: Any | None = None, shard_hint: Any | None = None) -> Any:
        """A pipeline whose ``execute`` waits for a turn (see :class:`RedisCluster`)."""
        if shard_hint:
            return super().pipeline(transaction, shard_hint)  # raises: not supported
        # redis-py declares an attribute abstract that ClusterPipeline sets at runtime.
        return _WaitingPipeline(self, transaction)  # type: ignore[abstract]


class _WaitingPipeline(ClusterPipeline):
    """A cluster pipeline sent within one turn of its client."""

    def __init__(self, client: WaitingRedisCluster, transaction: Any | None = None) -> None:
        super().__init__(client, transaction)
        self._waiting_client = client

    async def execute(self, raise_on_error: bool = True, allow_redirections: bool = True) -> Any:
        """Send the queued commands once a turn is free."""
        async with self._waiting_client.turn():
            return await super().execute(raise_on_error, allow_redirections)
