"""Coalescing on Redis: the whole conformance suite with it on, and the server's own
counters showing concurrent single-key calls arriving as batches."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable

import pytest
import pytest_asyncio
import redis.asyncio as redis
from polystore_redis import RedisBackend, RedisSettings

from polystore import DataStore, StoreError
from polystore.testing import LocalRedisServer, StoreConformance
from polystore.testing.services import ServiceEndpoint


def _namespace(kind: str) -> str:
    return f"{kind}-{uuid.uuid4().hex[:12]}"


class TestCoalescingRedisStore(StoreConformance):
    @pytest_asyncio.fixture
    async def backend(self, redis_service: ServiceEndpoint) -> AsyncIterator[RedisBackend]:
        settings = RedisSettings(url=redis_service.url, timeout=10, coalesce=True)
        async with RedisBackend(settings) as backend:
            yield backend

    @pytest_asyncio.fixture
    async def store(self, backend: RedisBackend) -> DataStore:
        store = backend.namespace(_namespace("t"))
        assert getattr(store, "coalescing", False)
        return store

    @pytest_asyncio.fixture
    async def sibling_store(self, backend: RedisBackend) -> DataStore:
        return backend.namespace(_namespace("s"))


async def _command_calls(url: str) -> dict[str, int]:
    client = redis.Redis.from_url(url)
    try:
        stats = await client.info("commandstats")
    finally:
        await client.aclose()
    return {name: int(fields["calls"]) for name, fields in stats.items()}


@pytest.mark.asyncio
async def test_concurrent_gets_reach_the_server_as_a_few_batch_reads(
    redis_service: ServiceEndpoint,
) -> None:
    settings = RedisSettings(url=redis_service.url, timeout=10, coalesce=True)
    async with RedisBackend(settings) as backend:
        store = backend.namespace(_namespace("count"))
        keys = [f"k{i}" for i in range(64)]
        before = await _command_calls(redis_service.url)
        await asyncio.gather(*(store.save(key, {"i": i}) for i, key in enumerate(keys)))
        values = await asyncio.gather(*(store.get(key) for key in keys))
        after = await _command_calls(redis_service.url)
    assert values == [{"i": i} for i in range(64)]
    sets = after.get("cmdstat_set", 0) - before.get("cmdstat_set", 0)
    gets = after.get("cmdstat_get", 0) - before.get("cmdstat_get", 0)
    scripts = after.get("cmdstat_evalsha", 0) - before.get("cmdstat_evalsha", 0)
    # Each save is its own SET (sent in pipelines); each key is read once, by a direct
    # GET or inside a batch's script, whose inner GETs Redis counts too.
    assert (sets, gets) == (64, 64)
    assert 1 <= scripts <= 8  # 64 concurrent gets: a handful of batches
    assert store.coalesce_stats.batches >= 2


@pytest.mark.asyncio
async def test_write_batches_fail_typed_while_the_server_is_down_then_serve_again(
    private_redis: Callable[..., LocalRedisServer],
) -> None:
    server = private_redis()
    settings = RedisSettings(url=server.url, timeout=2, pool_size=1, coalesce=True)
    async with RedisBackend(settings) as backend:
        store = backend.namespace(_namespace("cut"))
        version = await store.save("k", 0)
        server.stop()
        # One save goes direct; the compare-and-sets form a batch pipeline with scripts.
        results = await asyncio.gather(
            store.save("a", 1),
            *(store.save("k", i, if_version=version) for i in range(3)),
            return_exceptions=True,
        )
        assert all(isinstance(result, StoreError) for result in results)
        server.start()
        # One pooled connection: a batch that kept it would leave these waiting.
        assert await store.save("after", 1)
        assert await store.get("after") == 1
