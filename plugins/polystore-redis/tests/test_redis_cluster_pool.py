"""Redis Cluster: more concurrent calls than ``pool_size`` wait for a free connection
within the call's timeout, as on a single server, instead of failing at once."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest
from polystore_redis import RedisBackend, RedisSettings
from redis.crc import key_slot

from polystore import StoreError, StoreTimeoutError
from polystore.testing import LocalRedisCluster
from polystore.testing.fixtures import skip_allowed
from polystore.testing.services import ServiceEndpoint, ServiceUnavailable

POOL_SIZE = 2
TIMEOUT = 1.0


def _settings(url: str, **options: object) -> RedisSettings:
    return RedisSettings.model_validate(
        {"url": url, "cluster": True, "pool_size": POOL_SIZE, "timeout": TIMEOUT, **options}
    )


@pytest.fixture
def private_cluster(request: pytest.FixtureRequest) -> Iterator[LocalRedisCluster]:
    """A cluster of this test's own, whose nodes it may freeze."""
    try:
        cluster = LocalRedisCluster()
    except ServiceUnavailable as exc:
        if skip_allowed(request.config):
            pytest.skip(str(exc))
        raise
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.close()


@pytest.mark.asyncio
async def test_four_times_pool_size_concurrent_calls_all_succeed(
    redis_cluster_service: ServiceEndpoint, namespace: str
) -> None:
    calls = 4 * POOL_SIZE
    # Untagged: keys spread over the nodes, and batches are pipelines split by slot.
    settings = _settings(redis_cluster_service.url, hash_tag_namespaces=False)
    async with RedisBackend(settings) as backend:
        store = backend.namespace(namespace)
        saved = await asyncio.gather(*(store.save(f"k{i}", i) for i in range(calls)))
        got = await asyncio.gather(*(store.get(f"k{i}") for i in range(calls)))
        batches = await asyncio.gather(
            *(store.get_many([f"k{j}" for j in range(calls)]) for _ in range(calls))
        )
        deleted = await asyncio.gather(*(store.delete(f"k{i}") for i in range(calls)))
    assert len(saved) == calls
    assert got == list(range(calls))
    assert batches == [list(range(calls))] * calls
    assert deleted == [True] * calls


@pytest.mark.asyncio
async def test_a_call_waiting_on_an_exhausted_pool_times_out_within_its_timeout(
    private_cluster: LocalRedisCluster,
) -> None:
    async with RedisBackend(_settings(private_cluster.url)) as backend:
        store = backend.namespace("pool")  # tagged: every key on one node
        await store.save("k", 1)
        slot = key_slot(store.layout.key("k").encode())  # type: ignore[attr-defined]
        owner = backend.client.nodes_manager.get_node_from_slot(slot)
        node = next(n for n in private_cluster.nodes if n.port == owner.port)
        node.pause()
        # Every connection is held by a call the frozen node never answers.
        holders = [asyncio.ensure_future(store.save(f"h{i}", i)) for i in range(POOL_SIZE)]
        try:
            await asyncio.sleep(0.05)
            started = time.monotonic()
            with pytest.raises(StoreTimeoutError):
                await store.get("k")
            waited = time.monotonic() - started
        finally:
            node.resume()
            held = await asyncio.gather(*holders, return_exceptions=True)
        assert waited < TIMEOUT + 0.5
        assert all(isinstance(result, StoreError) for result in held)
        # The turns are given back: the store serves again.
        assert await store.get("k") == 1


@pytest.mark.asyncio
async def test_a_call_waiting_on_an_exhausted_pool_is_served_once_a_connection_frees(
    private_cluster: LocalRedisCluster,
) -> None:
    async with RedisBackend(_settings(private_cluster.url)) as backend:
        store = backend.namespace("pool")  # tagged: every key on one node
        await store.save("k", 1)
        slot = key_slot(store.layout.key("k").encode())  # type: ignore[attr-defined]
        owner = backend.client.nodes_manager.get_node_from_slot(slot)
        node = next(n for n in private_cluster.nodes if n.port == owner.port)
        node.pause()
        holders = [asyncio.ensure_future(store.save(f"h{i}", i)) for i in range(POOL_SIZE)]
        try:
            await asyncio.sleep(0.05)
            waiting = asyncio.ensure_future(store.get("k"))
            await asyncio.sleep(TIMEOUT / 4)
            assert not waiting.done()  # it waits for its turn, it does not fail
        finally:
            node.resume()
            held = await asyncio.gather(*holders, return_exceptions=True)
        assert await waiting == 1
        assert all(isinstance(result, int | str) for result in held)
