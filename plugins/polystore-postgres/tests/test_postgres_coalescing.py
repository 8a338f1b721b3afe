"""Coalescing on PostgreSQL: the whole conformance suite with it on, and the server's own
counters showing concurrent single-key calls arriving as a few statements and commits."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest
import pytest_asyncio
from polystore_postgres import PostgresBackend, PostgresSettings

from polystore import ConflictError, DataStore, Version
from polystore.testing import StoreConformance
from polystore.testing.services import ServiceEndpoint


class TestCoalescingPostgresStore(StoreConformance):
    @pytest_asyncio.fixture
    async def backend(self, postgres_service: ServiceEndpoint) -> AsyncIterator[PostgresBackend]:
        settings = PostgresSettings(url=postgres_service.url, reap_interval=None, coalesce=True)
        async with PostgresBackend(settings) as backend:
            yield backend

    @pytest_asyncio.fixture
    async def store(self, backend: PostgresBackend) -> DataStore:
        store = backend.namespace(f"t-{uuid.uuid4().hex[:12]}")
        assert getattr(store, "coalescing", False)
        return store

    @pytest_asyncio.fixture
    async def sibling_store(self, backend: PostgresBackend) -> DataStore:
        return backend.namespace(f"s-{uuid.uuid4().hex[:12]}")


async def _next_xid(url: str) -> int:
    """The server's next transaction id: each committed write transaction takes one."""
    conn = await asyncpg.connect(url)
    try:
        value = await conn.fetchval("SELECT pg_snapshot_xmax(pg_current_snapshot())::text")
    finally:
        await conn.close()
    return int(value)


@pytest.mark.asyncio
async def test_concurrent_saves_share_commits(postgres_service: ServiceEndpoint) -> None:
    settings = PostgresSettings(url=postgres_service.url, reap_interval=None, coalesce=True)
    async with PostgresBackend(settings) as backend:
        store = backend.namespace(f"c-{uuid.uuid4().hex[:12]}")
        await store.save("warm", 0)  # creates the table
        before = await _next_xid(postgres_service.url)
        versions = await asyncio.gather(*(store.save(f"k{i}", i) for i in range(64)))
        after = await _next_xid(postgres_service.url)
        values = await store.get_many([f"k{i}" for i in range(64)])
    assert values == list(range(64))
    assert len(set(versions)) == 64
    # 64 saves, a handful of write transactions (one per batch).
    assert after - before <= store.coalesce_stats.batches + store.coalesce_stats.direct_calls
    assert after - before < 16
    assert store.coalesce_stats.batched_calls >= 32


@pytest.mark.asyncio
async def test_a_mixed_batch_keeps_each_callers_own_outcome(
    postgres_service: ServiceEndpoint,
) -> None:
    settings = PostgresSettings(url=postgres_service.url, reap_interval=None, coalesce=True)
    async with PostgresBackend(settings) as backend:
        store = backend.namespace(f"m-{uuid.uuid4().hex[:12]}")
        base = await store.save("cas", 0)
        await store.save("gone", 0)
        results = await asyncio.gather(
            store.save("first", 1),
            store.save("cas", 1, if_version=base),
            store.save("cas", 2, if_version=Version("stale")),
            store.delete("gone"),
            store.save("b", 2, ttl=60),
            return_exceptions=True,
        )
        assert isinstance(results[1], str)
        assert isinstance(results[2], ConflictError)
        assert results[3] is True
        assert await store.get_many(["first", "cas", "gone", "b"]) == [1, 1, None, 2]
        assert store.coalesce_stats.batched_calls == 4
