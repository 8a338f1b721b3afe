"""The shared conformance suite against a private Redis server and a local Redis Cluster."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest_asyncio
from polystore_redis import RedisBackend, RedisSettings

from polystore import Capabilities, DataStore
from polystore.testing import StoreConformance
from polystore.testing.services import ServiceEndpoint


def _namespace(kind: str) -> str:
    return f"{kind}-{uuid.uuid4().hex[:12]}"


class TestRedisStore(StoreConformance):
    @pytest_asyncio.fixture
    async def backend(self, redis_service: ServiceEndpoint) -> AsyncIterator[RedisBackend]:
        async with RedisBackend(RedisSettings(url=redis_service.url, timeout=10)) as backend:
            yield backend

    @pytest_asyncio.fixture
    async def store(self, backend: RedisBackend) -> DataStore:
        return backend.namespace(_namespace("t"))

    @pytest_asyncio.fixture
    async def sibling_store(self, backend: RedisBackend) -> DataStore:
        return backend.namespace(_namespace("s"))


class TestRedisClusterStore(StoreConformance):
    """A cluster with hash-tagged namespaces: each namespace lives in one slot."""

    @pytest_asyncio.fixture
    async def backend(self, redis_cluster_service: ServiceEndpoint) -> AsyncIterator[RedisBackend]:
        settings = RedisSettings(url=redis_cluster_service.url, cluster=True, timeout=10)
        async with RedisBackend(settings) as backend:
            yield backend

    @pytest_asyncio.fixture
    async def store(self, backend: RedisBackend) -> DataStore:
        store = backend.namespace(_namespace("t"))
        assert Capabilities.TRANSACTIONS in store.capabilities
        return store

    @pytest_asyncio.fixture
    async def sibling_store(self, backend: RedisBackend) -> DataStore:
        return backend.namespace(_namespace("s"))


class TestRedisClusterUntaggedStore(StoreConformance):
    """A cluster without hash tags: keys spread over slots, batches are split by slot."""

    @pytest_asyncio.fixture
    async def backend(self, redis_cluster_service: ServiceEndpoint) -> AsyncIterator[RedisBackend]:
        settings = RedisSettings(
            url=redis_cluster_service.url, cluster=True, hash_tag_namespaces=False, timeout=10
        )
        async with RedisBackend(settings) as backend:
            yield backend

    @pytest_asyncio.fixture
    async def store(self, backend: RedisBackend) -> DataStore:
        store = backend.namespace(_namespace("t"))
        assert Capabilities.TRANSACTIONS not in store.capabilities
        return store

    @pytest_asyncio.fixture
    async def sibling_store(self, backend: RedisBackend) -> DataStore:
        return backend.namespace(_namespace("s"))
