"""The stored shard map: processes that share it agree, and refuse a map they cannot serve."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from polystore.backends.memory import MemoryBackend, MemorySettings
from polystore.errors import ConfigurationError, ConflictError, StoreUnavailableError
from polystore.plugins import PluginManager
from polystore.sharding import HashShardStrategy, ShardedStore, ShardMap, TopologyRecord
from polystore.testing import LocalRedisServer

pytestmark = pytest.mark.asyncio
REFRESH = 0.1


@pytest_asyncio.fixture
async def memory() -> AsyncIterator[MemoryBackend]:
    async with MemoryBackend(MemorySettings()) as backend:
        yield backend


def process(memory: MemoryBackend, shard_ids: str) -> ShardedStore:
    """A sharded store over ``shard_ids`` (placing keys on a, b, c) and the shared map record,
    as one application process would build it."""
    record = TopologyRecord(memory.namespace("map"), refresh_interval=REFRESH)
    stores = {sid: memory.namespace(f"data-{sid}") for sid in shard_ids}
    return ShardedStore(stores, HashShardStrategy(list("abc")), topology=record)


async def test_a_change_made_by_one_process_reaches_the_other(memory: MemoryBackend) -> None:
    one, other = process(memory, "abcd"), process(memory, "abcd")
    await one.refresh()
    await other.add_shard("d", memory.namespace("data-d"))
    await asyncio.sleep(REFRESH * 2)
    keys = [f"k{i}" for i in range(200)]

    await one.save_many(dict.fromkeys(keys, 1))  # re-reads the map first

    assert one.shard_map.epoch == other.shard_map.epoch == 1
    assert one.strategy == other.strategy
    on_d = [k for k in keys if await memory.namespace("data-d").get(k) == 1]
    assert on_d == [k for k in keys if other.shard_for(k) == "d"]
    assert on_d


async def test_a_process_that_lacks_a_shard_of_the_stored_map_refuses_calls(
    memory: MemoryBackend,
) -> None:
    one, other = process(memory, "abc"), process(memory, "abcd")
    assert await one.get("k") is None
    await other.add_shard("d", memory.namespace("data-d"))
    await asyncio.sleep(REFRESH * 2)
    with pytest.raises(ConfigurationError, match="was not given"):
        await one.get("k")


async def test_a_stale_publish_is_refused(memory: MemoryBackend) -> None:
    record = TopologyRecord(memory.namespace("map"))
    base = ShardMap(HashShardStrategy(["a"]))
    await record.load(base)
    other = TopologyRecord(memory.namespace("map"))
    await other.load(base)
    await record.publish(base.moved_to(HashShardStrategy(["a", "b"])))
    with pytest.raises(ConflictError):
        await other.publish(base.moved_to(HashShardStrategy(["a", "c"])))


async def test_calls_fail_closed_while_the_shard_map_cannot_be_read(
    memory: MemoryBackend,
) -> None:
    server = LocalRedisServer(name="shard-map")
    server.start()
    try:
        spec = PluginManager().backends.get("redis")
        settings = {"plugin": "redis", "url": server.url, "timeout": 1.0}
        async with spec.build(settings, instance_name="map") as redis:
            record = TopologyRecord(redis.namespace("map"), refresh_interval=2.0)
            stores = {sid: memory.namespace(f"data-{sid}") for sid in "ab"}
            store = ShardedStore(stores, topology=record)
            await store.save("k", 1)
            await store.refresh()  # due again in 2 s
            server.stop()
            assert await store.get("k") == 1  # the map is not due yet
            await asyncio.sleep(2.2)
            with pytest.raises(StoreUnavailableError):
                await store.get("k")
            server.start()
            assert await store.get("k") == 1
    finally:
        server.close()
