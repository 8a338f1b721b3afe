"""The unchanged conformance suite on sharded stores of three different backends.

Two placements: key ranges, chosen so that the keys of each transaction test share a
shard while the scan, find and batch tests span several; and rendezvous hashing, which
spreads every test's keys over the shards, on shards one of which lacks transactions.
Transactions spanning shards are refused with ``CrossShardError``: see
``test_sharded_store.py``.
"""

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
from polystore.sharding import HashShardStrategy, RangeShardStrategy, ShardedStore
from polystore.testing import StoreConformance
from polystore.testing.services import ServiceEndpoint
from polystore.types import Capabilities

RANGES = [(None, "o", "first"), ("o", "u", "second"), ("u", None, "third")]


def _ns(kind: str) -> str:
    return f"{kind}-{uuid.uuid4().hex[:12]}"


class _MixedShards:
    """Memory, SQLite and a real Redis server as the three shards."""

    @pytest_asyncio.fixture
    async def backends(
        self, tmp_path: Path, redis_service: ServiceEndpoint
    ) -> AsyncIterator[list[object]]:
        sqlite = SqliteBackend(
            SqliteSettings(path=str(tmp_path / "db.sqlite"), synchronous="NORMAL")
        )
        memory = MemoryBackend(MemorySettings())
        redis = RedisBackend(RedisSettings(url=redis_service.url, timeout=10))
        async with memory, sqlite, redis:
            yield [memory, sqlite, redis]

    def build(self, backends: list[object], kind: str) -> ShardedStore:
        raise NotImplementedError

    @pytest_asyncio.fixture
    async def store(self, backends: list[object]) -> DataStore:
        return self.build(backends, "t")

    @pytest_asyncio.fixture
    async def sibling_store(self, backends: list[object]) -> DataStore:
        return self.build(backends, "s")


def _shards(backends: list[object], kind: str) -> dict[str, DataStore]:
    ns = _ns(kind)
    names = ["first", "second", "third"]
    return {n: b.namespace(ns) for n, b in zip(names, backends, strict=True)}  # type: ignore[attr-defined]


class TestRangeShardedMixedStore(_MixedShards, StoreConformance):
    def build(self, backends: list[object], kind: str) -> ShardedStore:
        return ShardedStore(_shards(backends, kind), RangeShardStrategy(RANGES))


class TestHashShardedClusterStore(StoreConformance):
    """Memory, SQLite and a Redis Cluster whose namespaces are not hash-tagged.

    The cluster shard lacks transactions (its keys spread over slots), so the sharded
    store declares none either and the suite checks that they are refused.
    """

    @pytest_asyncio.fixture
    async def backends(
        self, tmp_path: Path, redis_cluster_service: ServiceEndpoint
    ) -> AsyncIterator[list[object]]:
        sqlite = SqliteBackend(
            SqliteSettings(path=str(tmp_path / "db.sqlite"), synchronous="NORMAL")
        )
        memory = MemoryBackend(MemorySettings())
        cluster = RedisBackend(
            RedisSettings(
                url=redis_cluster_service.url, cluster=True, hash_tag_namespaces=False, timeout=10
            )
        )
        async with memory, sqlite, cluster:
            yield [memory, sqlite, cluster]

    @pytest_asyncio.fixture
    async def store(self, backends: list[object]) -> DataStore:
        store = ShardedStore(_shards(backends, "t"), HashShardStrategy())
        assert Capabilities.TRANSACTIONS not in store.capabilities
        return store

    @pytest_asyncio.fixture
    async def sibling_store(self, backends: list[object]) -> DataStore:
        return ShardedStore(_shards(backends, "s"), HashShardStrategy())


class TestRangeShardedServerStore(StoreConformance):
    """PostgreSQL, MongoDB and SQLite as the three shards."""

    @pytest_asyncio.fixture
    async def backends(
        self,
        tmp_path: Path,
        postgres_service: ServiceEndpoint,
        mongodb_service: ServiceEndpoint,
    ) -> AsyncIterator[list[object]]:
        postgres = PostgresBackend(PostgresSettings(url=postgres_service.url, reap_interval=None))
        mongo = MongoBackend(
            MongoSettings(
                url=mongodb_service.url,
                database=f"sharding_{uuid.uuid4().hex[:8]}",
                timeout=30.0,
                keys_per_query=100,
            )
        )
        sqlite = SqliteBackend(
            SqliteSettings(path=str(tmp_path / "db.sqlite"), synchronous="NORMAL")
        )
        async with postgres, mongo, sqlite:
            yield [postgres, mongo, sqlite]

    @pytest_asyncio.fixture
    async def store(self, backends: list[object]) -> DataStore:
        return ShardedStore(_shards(backends, "t"), RangeShardStrategy(RANGES))

    @pytest_asyncio.fixture
    async def sibling_store(self, backends: list[object]) -> DataStore:
        return ShardedStore(_shards(backends, "s"), RangeShardStrategy(RANGES))
