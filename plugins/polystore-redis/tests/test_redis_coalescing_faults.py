"""Coalescing (on by default) while the server dies mid-batch: every call fails typed,
no batch pipeline keeps a pooled connection or warns about one, and the same store
serves again once the server is back.

Each round starts many concurrent reads, writes and compare-and-sets (so batches with
scripts are in flight), then kills the server (or freezes it, then kills it) after a
short random delay, repeated to hit the windows of a batch: loading its scripts,
sending, reading the replies.
"""

from __future__ import annotations

import asyncio
import gc
import random
import sys
from collections.abc import Callable
from typing import Any

import pytest
from polystore_redis import RedisBackend, RedisSettings

from polystore import DataStore, StoreError, Version
from polystore.testing import LocalRedisServer

StartRedis = Callable[..., LocalRedisServer]

ROUNDS = 8
CALLS = 96
POOL_SIZE = 4


@pytest.fixture
def unraisable(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """What objects complained about while being collected (e.g. an unclosed pipeline)."""
    seen: list[str] = []

    def hook(info: Any) -> None:
        seen.append(f"{info.exc_type.__name__}: {info.exc_value} ({info.object!r})")

    monkeypatch.setattr(sys, "unraisablehook", hook)
    return seen


async def _one_call(store: DataStore, i: int, version: Version) -> object:
    kind = i % 4
    if kind == 0:
        return await store.get(f"k{i % 16}")
    if kind == 1:
        return await store.save(f"k{i % 16}", i)
    if kind == 2:
        # Compare-and-sets: their batch pipeline loads the scripts first.
        return await store.save("cas", i, if_version=version)
    return await store.delete(f"k{i % 16}")


async def _round(server: LocalRedisServer, store: DataStore, *, freeze_first: bool) -> None:
    version = await store.save("cas", 0)
    calls = [asyncio.ensure_future(_one_call(store, i, version)) for i in range(CALLS)]
    await asyncio.sleep(random.uniform(0, 0.004))
    if freeze_first:
        server.pause()
        await asyncio.sleep(random.uniform(0, 0.05))
    server.kill()
    results = await asyncio.gather(*calls, return_exceptions=True)
    unexpected = [
        r for r in results if isinstance(r, BaseException) and not isinstance(r, StoreError)
    ]
    assert unexpected == []
    server.start()


def _in_use(backend: RedisBackend) -> int:
    pool = backend.client.connection_pool
    return len(pool._in_use_connections)  # the leak is what is checked


@pytest.mark.asyncio
@pytest.mark.parametrize("freeze_first", [False, True], ids=["killed", "paused-then-killed"])
async def test_a_server_lost_mid_batch_leaks_no_connection_and_the_store_serves_again(
    private_redis: StartRedis, unraisable: list[str], freeze_first: bool
) -> None:
    complaints = unraisable
    server = private_redis()
    settings = RedisSettings.model_validate(
        {"url": server.url, "timeout": 1, "pool_size": POOL_SIZE}
    )
    async with RedisBackend(settings) as backend:
        store = backend.namespace("faults")
        assert getattr(store, "coalescing", False)
        for _ in range(ROUNDS):
            await _round(server, store, freeze_first=freeze_first)
            await asyncio.sleep(0.05)  # batch tasks whose callers timed out finish too
            gc.collect()
            assert _in_use(backend) == 0
            assert complaints == []
            # Every pooled connection is usable again: more concurrent calls than the pool.
            saved = await asyncio.gather(*(store.save(f"after{i}", i) for i in range(32)))
            assert len(saved) == 32
            assert await asyncio.gather(*(store.get(f"after{i}") for i in range(32))) == list(
                range(32)
            )
            assert _in_use(backend) == 0
    gc.collect()
    assert complaints == []
