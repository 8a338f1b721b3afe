"""Faults on a dedicated private server: killed, restarted and frozen mid-workload."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import pytest
from polystore_redis import RedisBackend, RedisSettings, RedisStore

from polystore import (
    StoreTimeoutError,
    StoreUnavailableError,
    UnknownOutcomeError,
)
from polystore.testing import LocalRedisServer

pytestmark = pytest.mark.asyncio

StartRedis = Callable[..., LocalRedisServer]
TIMEOUT = 0.5
ATTEMPTS = 2
# Every call gives up after ATTEMPTS socket timeouts plus short backoffs; allow slack
# for a loaded machine, but far less than a hang.
CALL_BOUND = ATTEMPTS * TIMEOUT * 2 + 0.5
LONGEST_TICK_GAP = TIMEOUT * 0.9
"""A loop blocked by one socket wait would stall a whole TIMEOUT; shorter stalls happen on
a busy machine whatever the code does."""


def _settings(server: LocalRedisServer) -> RedisSettings:
    return RedisSettings(
        url=server.url,
        timeout=TIMEOUT,
        retry={"attempts": ATTEMPTS, "base_delay": 0.01, "max_delay": 0.05},
    )


@dataclass
class Workload:
    """A writer saving new keys in a loop, and a ticker that notices event-loop stalls."""

    store: RedisStore
    acknowledged: list[str] = field(default_factory=list)
    failures: list[BaseException] = field(default_factory=list)
    ticks: list[float] = field(default_factory=list)
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    async def write(self) -> None:
        number = 0
        while not self.stop.is_set():
            number += 1
            key = f"w{number:06d}"
            try:
                await self.store.save(key, {"n": number})
            except (StoreUnavailableError, UnknownOutcomeError) as exc:
                self.failures.append(exc)
                await asyncio.sleep(0.01)
            else:
                self.acknowledged.append(key)

    async def tick(self) -> None:
        while not self.stop.is_set():
            self.ticks.append(time.monotonic())
            await asyncio.sleep(0.01)

    def longest_gap(self) -> float:
        return max(b - a for a, b in zip(self.ticks, self.ticks[1:], strict=False))


@asynccontextmanager
async def _running(store: RedisStore) -> AsyncIterator[Workload]:
    workload = Workload(store)
    tasks = [asyncio.create_task(workload.write()), asyncio.create_task(workload.tick())]
    try:
        yield workload
    finally:
        workload.stop.set()
        await asyncio.gather(*tasks)


async def _fails_fast(call: Callable[[], Awaitable[object]], error: type[BaseException]) -> float:
    started = time.monotonic()
    with pytest.raises(error):
        await call()
    return time.monotonic() - started


async def test_a_killed_server_fails_calls_fast_and_the_same_store_recovers_every_write(
    private_redis: StartRedis, namespace: str
) -> None:
    server = private_redis()  # appendonly yes, appendfsync always
    async with RedisBackend(_settings(server)) as backend:
        store = backend.namespace(namespace)
        assert isinstance(store, RedisStore)
        async with _running(store) as workload:
            await asyncio.sleep(0.3)
            await asyncio.to_thread(server.kill)
            outage = [
                await _fails_fast(lambda: store.get("w000001"), StoreUnavailableError),
                await _fails_fast(lambda: store.get_many(["w000001"]), StoreUnavailableError),
                await _fails_fast(lambda: store.save("x", 1), StoreUnavailableError),
                await _fails_fast(lambda: store.delete_many(["x"]), StoreUnavailableError),
            ]
            health = await store.health()
            failures_during_outage = len(workload.failures)
            await asyncio.to_thread(server.start)
            written_before_restart = len(workload.acknowledged)
            await asyncio.sleep(0.3)

        assert max(outage) < CALL_BOUND
        assert health.ok is False
        assert failures_during_outage > 0
        assert len(workload.acknowledged) > written_before_restart > 0
        assert workload.longest_gap() < LONGEST_TICK_GAP
        values = await store.get_many(workload.acknowledged)
        missing = [k for k, v in zip(workload.acknowledged, values, strict=True) if v is None]
        assert missing == []


async def test_an_acknowledged_write_survives_a_kill_with_aof_always(
    private_redis: StartRedis, namespace: str
) -> None:
    server = private_redis()
    async with RedisBackend(_settings(server)) as backend:
        store = backend.namespace(namespace)
        versions = [await store.save(f"k{i}", i) for i in range(200)]
        server.kill()
        server.start()
        entries = [await store.get_entry(f"k{i}") for i in range(200)]
    assert [e.version if e else None for e in entries] == versions


async def test_a_frozen_server_times_out_within_the_bound_without_stalling_the_loop(
    private_redis: StartRedis, namespace: str
) -> None:
    server = private_redis()
    async with RedisBackend(_settings(server)) as backend:
        store = backend.namespace(namespace)
        assert isinstance(store, RedisStore)
        await store.save("k", "before")
        pid = int((await backend.client.info("server"))["process_id"])
        async with _running(store) as workload:
            os.kill(pid, signal.SIGSTOP)
            try:
                read = await _fails_fast(lambda: store.get("k"), StoreTimeoutError)
                write = await _fails_fast(lambda: store.save("k", "during"), UnknownOutcomeError)
            finally:
                os.kill(pid, signal.SIGCONT)
            await asyncio.sleep(0.2)

        assert read < CALL_BOUND
        assert write < CALL_BOUND
        assert workload.longest_gap() < LONGEST_TICK_GAP
        assert await store.get("k") in ("before", "during")
        assert await store.save("k", "after")
        assert await store.get("k") == "after"


async def test_a_commit_against_a_dead_server_fails_as_unavailable_and_applies_nothing(
    private_redis: StartRedis, namespace: str
) -> None:
    server = private_redis()
    async with RedisBackend(_settings(server)) as backend:
        store = backend.namespace(namespace)
        version = await store.save("a", "before")

        async def commit_during_outage() -> None:
            async with store.transaction() as tx:
                await tx.save("a", "from tx", if_version=version)
                await tx.save("b", "from tx")
                await asyncio.to_thread(server.kill)

        with pytest.raises(StoreUnavailableError):
            await commit_during_outage()
        await asyncio.to_thread(server.start)
        assert await store.get_many(["a", "b"]) == ["before", None]
