"""The conformance suite on replicated stores: memory + SQLite + a real Redis server, and
real PostgreSQL + MongoDB servers (private ones from the test kit) + memory."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest_asyncio
from polystore_mongodb import MongoBackend, MongoSettings
from polystore_postgres import PostgresBackend, PostgresSettings
from polystore_redis import RedisBackend, RedisSettings

from polystore.backends.memory import MemoryBackend, MemorySettings
from polystore.backends.sqlite import SqliteBackend, SqliteSettings
from polystore.protocol import DataStore
from polystore.replication import ReplicatedStore, VectorClock
from polystore.testing import StoreConformance
from polystore.testing.services import ServiceEndpoint
from polystore.types import JSONValue

Embedded = tuple[MemoryBackend, SqliteBackend]


@pytest_asyncio.fixture
async def embedded(tmp_path: Path) -> AsyncIterator[Embedded]:
    settings = SqliteSettings(path=str(tmp_path / "db.sqlite"), synchronous="NORMAL")
    async with MemoryBackend(MemorySettings()) as memory, SqliteBackend(settings) as sqlite:
        yield memory, sqlite


def _replicas(embedded: Embedded, redis: DataStore, namespace: str) -> dict[str, DataStore]:
    memory, sqlite = embedded
    return {
        "memory": memory.namespace(namespace),
        "sqlite": sqlite.namespace(namespace),
        "redis": redis,
    }


@pytest_asyncio.fixture
async def redis_backend(redis_service: ServiceEndpoint) -> AsyncIterator[RedisBackend]:
    async with RedisBackend(RedisSettings(url=redis_service.url)) as backend:
        yield backend


class TestReplicatedLastWriteWins(StoreConformance):
    @pytest_asyncio.fixture
    async def store(
        self, embedded: Embedded, redis_backend: RedisBackend
    ) -> AsyncIterator[DataStore]:
        namespace = f"t{uuid.uuid4().hex[:12]}"
        replicas = _replicas(embedded, redis_backend.namespace(namespace), namespace)
        store = ReplicatedStore(replicas, node_id="n1")
        yield store
        await store.aclose()

    @pytest_asyncio.fixture
    async def sibling_store(
        self, embedded: Embedded, redis_backend: RedisBackend
    ) -> AsyncIterator[DataStore]:
        namespace = f"s{uuid.uuid4().hex[:12]}"
        replicas = _replicas(embedded, redis_backend.namespace(namespace), namespace)
        store = ReplicatedStore(replicas, node_id="n1")
        yield store
        await store.aclose()


def _last(values: list[JSONValue]) -> JSONValue:
    return values[-1]


class TestReplicatedVectorClock(StoreConformance):
    @pytest_asyncio.fixture
    async def store(
        self, embedded: Embedded, redis_backend: RedisBackend
    ) -> AsyncIterator[DataStore]:
        namespace = f"t{uuid.uuid4().hex[:12]}"
        replicas = _replicas(embedded, redis_backend.namespace(namespace), namespace)
        store = ReplicatedStore(replicas, resolver=VectorClock(merge=_last), node_id="n1")
        yield store
        await store.aclose()


@pytest_asyncio.fixture
async def postgres_backend(postgres_service: ServiceEndpoint) -> AsyncIterator[PostgresBackend]:
    settings = PostgresSettings(url=postgres_service.url, reap_interval=None)
    async with PostgresBackend(settings) as backend:
        yield backend


@pytest_asyncio.fixture
async def mongo_backend(mongodb_service: ServiceEndpoint) -> AsyncIterator[MongoBackend]:
    settings = MongoSettings(
        url=mongodb_service.url,
        database=f"polystore_replication_{uuid.uuid4().hex[:8]}",
        timeout=120.0,  # a 10 000-item batch on the test server is slow
        keys_per_query=100,
    )
    async with MongoBackend(settings) as backend:
        yield backend


class TestReplicatedOnPostgresAndMongoDB(StoreConformance):
    @pytest_asyncio.fixture
    async def store(
        self,
        embedded: Embedded,
        postgres_backend: PostgresBackend,
        mongo_backend: MongoBackend,
    ) -> AsyncIterator[DataStore]:
        namespace = f"t{uuid.uuid4().hex[:12]}"
        replicas = {
            "postgres": postgres_backend.namespace(namespace),
            "mongodb": mongo_backend.namespace(namespace),
            "memory": embedded[0].namespace(namespace),
        }
        store = ReplicatedStore(replicas, node_id="n1")
        yield store
        await store.aclose()
