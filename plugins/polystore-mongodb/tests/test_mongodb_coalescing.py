"""Coalescing on MongoDB: the whole conformance suite with it on, and the server's own
counters showing concurrent single-key calls arriving as a few requests."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import pytest_asyncio
from polystore_mongodb import MongoBackend, MongoDBStore, MongoSettings

from polystore import ConflictError, DataStore, Version
from polystore.testing import StoreConformance

SettingsFactory = Callable[..., MongoSettings]


@pytest_asyncio.fixture
async def coalescing_backend(make_settings: SettingsFactory) -> AsyncIterator[MongoBackend]:
    async with MongoBackend(make_settings(coalesce=True)) as backend:
        yield backend


def _store(backend: MongoBackend, tag: str) -> MongoDBStore:
    store = backend.namespace(f"{tag}-{uuid.uuid4().hex[:12]}")
    assert isinstance(store, MongoDBStore)
    assert store.coalescing
    return store


class TestCoalescingMongoDBStore(StoreConformance):
    @pytest_asyncio.fixture
    async def store(self, coalescing_backend: MongoBackend) -> DataStore:
        return _store(coalescing_backend, "t")

    @pytest_asyncio.fixture
    async def sibling_store(self, coalescing_backend: MongoBackend) -> DataStore:
        return _store(coalescing_backend, "s")


async def _opcounters(store: MongoDBStore) -> dict[str, int]:
    collection = await store.collection()
    status: dict[str, Any] = await collection.database.client.admin.command("serverStatus")
    return {name: int(count) for name, count in status["opcounters"].items()}


@pytest.mark.asyncio
async def test_concurrent_gets_reach_the_server_as_a_few_queries(
    coalescing_backend: MongoBackend,
) -> None:
    store = _store(coalescing_backend, "count")
    await store.save_many({f"k{i}": i for i in range(64)})
    before = await _opcounters(store)
    values = await asyncio.gather(*(store.get(f"k{i}") for i in range(64)))
    after = await _opcounters(store)
    assert values == list(range(64))
    queries = after["query"] - before["query"]
    assert queries <= store.coalesce_stats.batches + store.coalesce_stats.direct_calls
    assert queries < 16


@pytest.mark.asyncio
async def test_a_mixed_batch_keeps_each_callers_own_outcome(
    coalescing_backend: MongoBackend,
) -> None:
    store = _store(coalescing_backend, "mixed")
    base = await store.save("cas", 0)
    await store.save("gone", 0)
    results = await asyncio.gather(
        store.save("first", 1),
        store.save("cas", 1, if_version=base),
        store.save("cas", 2, if_version=Version("stale")),
        store.delete("gone"),
        store.save("b", 2, ttl=60),
        store.save("b", 3),
        return_exceptions=True,
    )
    assert isinstance(results[1], str)
    assert isinstance(results[2], ConflictError)
    assert results[3] is True
    entry = await store.get_entry("b")
    assert entry is not None
    assert (entry.value, entry.version, entry.expires_at) == (3, results[5], None)
    assert await store.get_many(["first", "cas", "gone"]) == [1, 1, None]
    assert store.coalesce_stats.batched_calls == 5
