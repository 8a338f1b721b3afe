"""Redis Cluster specifics: hash-tagged namespaces, batches split by slot, atomic commits."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from polystore_redis import RedisBackend, RedisSettings, RedisStore
from redis.asyncio.cluster import RedisCluster
from redis.crc import key_slot

from polystore import Capabilities, ConflictError
from polystore.testing.services import ServiceEndpoint

pytestmark = pytest.mark.asyncio


@pytest_asyncio.fixture
async def cluster(redis_cluster_service: ServiceEndpoint) -> AsyncIterator[RedisCluster]:
    client = RedisCluster.from_url(redis_cluster_service.url)
    await client.initialize()
    yield client
    await client.aclose()


async def _backend(url: str, **options: object) -> RedisBackend:
    backend = RedisBackend(RedisSettings.model_validate({"url": url, **options}))
    await backend.open()
    return backend


def _slot_owners(cluster: RedisCluster, keys: list[str]) -> set[str]:
    manager = cluster.nodes_manager
    return {manager.get_node_from_slot(key_slot(k.encode())).name for k in keys}


async def test_a_cluster_url_opens_a_cluster_backend(
    redis_cluster_service: ServiceEndpoint, namespace: str
) -> None:
    url = redis_cluster_service.url.replace("redis://", "redis+cluster://")
    backend = await _backend(url)
    try:
        store = backend.namespace(namespace)
        await store.save("k", {"v": 1})
        assert backend.is_cluster is True
        assert await store.get("k") == {"v": 1}
        assert (await store.health()).detail.startswith("redis cluster")
    finally:
        await backend.aclose()


async def test_a_tagged_namespace_keeps_every_key_in_one_slot(
    redis_cluster_service: ServiceEndpoint, cluster: RedisCluster, namespace: str
) -> None:
    backend = await _backend(redis_cluster_service.url, cluster=True)
    try:
        store = backend.namespace(namespace)
        assert isinstance(store, RedisStore)
        await store.save_many({f"k{i}": i for i in range(300)})
        stored = [k.decode() async for k in cluster.scan_iter(match=f"polystore:{{{namespace}}}:*")]
        assert len(stored) == 300
        assert len({key_slot(k.encode()) for k in stored}) == 1
        assert Capabilities.TRANSACTIONS in store.capabilities
        assert Capabilities.DURABLE in store.capabilities
    finally:
        await backend.aclose()


async def test_an_untagged_namespace_spreads_and_batches_split_by_slot(
    redis_cluster_service: ServiceEndpoint, cluster: RedisCluster, namespace: str
) -> None:
    backend = await _backend(redis_cluster_service.url, cluster=True, hash_tag_namespaces=False)
    try:
        store = backend.namespace(namespace)
        items = {f"k{i}": i for i in range(500)}
        await store.save_many(items)
        await store.save_many({f"t{i}": i for i in range(50)}, ttl=60)
        keys = [f"polystore:{namespace}:{k}" for k in items]
        assert len(_slot_owners(cluster, keys)) == 3
        assert await store.get_many([*reversed(items), "missing"]) == [
            *reversed(items.values()),
            None,
        ]
        assert sorted([k async for k in store.scan(prefix="t")]) == sorted(
            f"t{i}" for i in range(50)
        )
        assert await store.delete_many([*items, "missing"]) == 500
        assert Capabilities.TRANSACTIONS not in store.capabilities
    finally:
        await backend.aclose()


async def test_a_cluster_commit_is_all_or_nothing(
    redis_cluster_service: ServiceEndpoint, namespace: str
) -> None:
    backend = await _backend(redis_cluster_service.url, cluster=True)
    store = backend.namespace(namespace)
    version = await store.save("a", "original")

    async def interleaved() -> None:
        async with store.transaction() as tx:
            await tx.save("a", "from tx", if_version=version)
            await tx.save("b", "from tx", ttl=60)
            await tx.delete("c")
            await store.save("a", "concurrent")

    try:
        await store.save("c", "kept")
        with pytest.raises(ConflictError):
            await interleaved()
        assert await store.get_many(["a", "b", "c"]) == ["concurrent", None, "kept"]
    finally:
        await backend.aclose()


async def test_a_prefix_with_an_empty_hash_tag_still_works_without_transactions(
    redis_cluster_service: ServiceEndpoint, cluster: RedisCluster, namespace: str
) -> None:
    backend = await _backend(redis_cluster_service.url, cluster=True, prefix="p{}")
    try:
        store = backend.namespace(namespace)
        items = {f"k{i}": i for i in range(200)}
        await store.save_many(items)
        keys = [f"p{{}}:{{{namespace}}}:{k}" for k in items]
        assert len(_slot_owners(cluster, keys)) > 1
        assert await store.get_many(list(items)) == list(items.values())
        assert Capabilities.TRANSACTIONS not in store.capabilities
    finally:
        await backend.aclose()
