"""The backend on a live server: lifecycle, capabilities, transactions, plugin registration."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from polystore_mongodb import MongoBackend, MongoDBStore, MongoSettings
from pymongo import AsyncMongoClient

from polystore import (
    AlreadyExistsError,
    Capabilities,
    CircuitBreakerStore,
    ConflictError,
    PluginManager,
    Polystore,
    RouteRequirementError,
    StoreUnavailableError,
)
from polystore.testing.services import ServiceEndpoint

pytestmark = pytest.mark.asyncio


def fresh(backend: MongoBackend) -> MongoDBStore:
    store = backend.namespace(f"b-{uuid.uuid4().hex[:12]}")
    assert isinstance(store, MongoDBStore)
    return store


async def test_open_detects_a_replica_set_and_declares_transactions(
    make_settings: Any,
) -> None:
    backend = MongoBackend(make_settings())
    store = backend.namespace("early")  # made before open: updated when open detects
    assert Capabilities.TRANSACTIONS not in store.capabilities
    async with backend:
        assert Capabilities.TRANSACTIONS in backend.capabilities
        assert Capabilities.TRANSACTIONS in store.capabilities


async def test_a_transaction_on_an_unopened_backend_opens_it_first(make_settings: Any) -> None:
    backend = MongoBackend(make_settings())
    try:
        store = fresh(backend)
        async with store.transaction() as tx:
            await tx.save("a", 1)
        assert await store.get("a") == 1
    finally:
        await backend.aclose()


async def test_health_reports_the_server_and_database(mongo_backend: MongoBackend) -> None:
    health = await mongo_backend.health()
    assert health.ok is True
    assert "replica set" in health.detail
    assert mongo_backend.database_name in health.detail


async def test_calls_after_close_raise_store_unavailable(make_settings: Any) -> None:
    backend = MongoBackend(make_settings())
    store = fresh(backend)
    await store.save("k", 1)
    await backend.aclose()
    with pytest.raises(StoreUnavailableError):
        await store.get("k")
    with pytest.raises(StoreUnavailableError):
        await fresh(backend).get("k")


async def test_a_client_passed_in_is_used_and_never_closed(
    mongodb_service: ServiceEndpoint,
) -> None:
    database = f"client_{uuid.uuid4().hex[:8]}"
    url = mongodb_service.url.replace("/?", f"/{database}?")
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(url)
    try:
        async with MongoBackend(MongoSettings(), client=client) as backend:
            assert backend.owns_client is False
            assert backend.database_name == database  # from the client's URI
            await backend.namespace("n").save("k", "v")
        document = await client[database]["polystore.n"].find_one({"_id": "k"})
        assert document is not None
        assert document["v"] == "v"
    finally:
        await client.close()


async def test_the_write_concern_is_applied_to_a_client_passed_in(
    mongodb_service: ServiceEndpoint,
) -> None:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongodb_service.url, w=1)
    try:
        async with MongoBackend(MongoSettings(database="wc"), client=client) as backend:
            database = await backend.database()
            assert database.write_concern.document == {"w": "majority", "j": True}
    finally:
        await client.close()


# -- transactions --------------------------------------------------------------------------


async def test_a_transaction_reads_its_own_writes_and_deletes(mongo_store: MongoDBStore) -> None:
    await mongo_store.save("a", 1)
    async with mongo_store.transaction() as tx:
        assert await tx.delete("a") is True
        assert await tx.get("a") is None
        version = await tx.save("b", 2, ttl=60)
        entry = await tx.get_entry("b")
        assert entry is not None
        assert (entry.value, entry.version) == (2, version)
        assert entry.expires_at is not None
    assert await mongo_store.get_many(["a", "b"]) == [None, 2]


async def test_create_only_inside_a_transaction_aborts_it(mongo_store: MongoDBStore) -> None:
    await mongo_store.save("taken", "first")

    async def create_both() -> None:
        async with mongo_store.transaction() as tx:
            await tx.save("other", 1)
            await tx.save("taken", "second", if_absent=True)

    with pytest.raises(AlreadyExistsError):
        await create_both()
    assert await mongo_store.get_many(["taken", "other"]) == ["first", None]


async def test_cas_inside_a_transaction_commits_with_the_current_version(
    mongo_store: MongoDBStore,
) -> None:
    version = await mongo_store.save("a", 1)
    async with mongo_store.transaction() as tx:
        await tx.save("a", 2, if_version=version)
        assert await tx.delete("missing") is False
    assert await mongo_store.get("a") == 2


async def test_concurrent_transactions_on_one_key_conflict(mongo_store: MongoDBStore) -> None:
    await mongo_store.save("k", 0)
    first_wrote = asyncio.Event()
    second_done = asyncio.Event()

    async def first() -> None:
        async with mongo_store.transaction() as tx:
            await tx.save("k", "first")
            first_wrote.set()
            await second_done.wait()

    async def second() -> None:
        await first_wrote.wait()
        try:
            async with mongo_store.transaction() as tx:
                await tx.save("k", "second")
        finally:
            second_done.set()

    results = await asyncio.gather(first(), second(), return_exceptions=True)
    assert results[0] is None
    assert isinstance(results[1], ConflictError)
    assert await mongo_store.get("k") == "first"


# -- plugin registration -------------------------------------------------------------------


async def test_the_entry_point_registers_the_mongodb_backend() -> None:
    manager = PluginManager()
    spec = manager.backends.get("mongodb")
    assert spec.distribution == "polystore-mongodb"
    assert spec.settings_model is MongoSettings
    assert Capabilities.TRANSACTIONS in spec.capabilities
    backend = spec.build({"url": "mongodb://h/app"}, instance_name="docs")
    assert isinstance(backend, MongoBackend)
    assert (backend.name, backend.database_name) == ("docs", "app")


async def test_polystore_routes_to_mongodb_and_checks_capabilities(
    mongodb_service: ServiceEndpoint,
) -> None:
    config = {
        "backends": {
            "docs": {"plugin": "mongodb", "url": mongodb_service.url, "database": "routing"}
        },
        "routes": {"ledger": {"backend": "docs", "requires": ["transactions", "cas", "durable"]}},
    }
    async with Polystore.from_config(config) as ps:
        store = ps.route("ledger")
        assert isinstance(store, CircuitBreakerStore)  # the router's breaker for "docs"
        assert isinstance(store.store, MongoDBStore)
        await store.save("k", {"amount": "1.00"})
        assert await store.get("k") == {"amount": "1.00"}


async def test_a_route_needing_durability_refuses_w1(mongodb_service: ServiceEndpoint) -> None:
    config = {
        "backends": {"docs": {"plugin": "mongodb", "url": mongodb_service.url, "w": 1}},
        "routes": {"ledger": {"backend": "docs", "requires": ["durable"]}},
    }
    with pytest.raises(RouteRequirementError):
        async with Polystore.from_config(config):
            pass
