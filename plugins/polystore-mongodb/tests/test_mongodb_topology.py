"""Capabilities follow the server: a standalone server has no transactions."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from polystore_mongodb import MongoBackend

from polystore import Capabilities, Polystore, RouteRequirementError, UnsupportedOperationError
from polystore.testing import LocalMongoServer


@pytest.fixture(scope="module")
def standalone(private_mongo: Callable[..., LocalMongoServer]) -> LocalMongoServer:
    """A server that reports itself as standalone (no replica set in ``hello``)."""
    return private_mongo("--standalone")


@pytest.mark.asyncio
async def test_a_standalone_server_gets_every_capability_but_transactions(
    standalone: LocalMongoServer, make_settings: Any
) -> None:
    async with MongoBackend(make_settings(standalone.url)) as backend:
        store = backend.namespace("n")
        assert Capabilities.TRANSACTIONS not in backend.capabilities
        assert store.capabilities == (
            Capabilities.TTL
            | Capabilities.CAS
            | Capabilities.SCAN
            | Capabilities.QUERY
            | Capabilities.SHARED
            | Capabilities.DURABLE
        )
        with pytest.raises(UnsupportedOperationError):
            store.transaction()
        version = await store.save("k", 1)
        await store.save("k", 2, if_version=version)
        assert await store.get("k") == 2
        health = await backend.health()
        assert "standalone" in health.detail


@pytest.mark.asyncio
async def test_an_unopened_store_on_a_standalone_server_refuses_a_transaction(
    standalone: LocalMongoServer, make_settings: Any
) -> None:
    backend = MongoBackend(make_settings(standalone.url))
    try:
        store = backend.namespace("n")
        with pytest.raises(UnsupportedOperationError):
            async with store.transaction():
                pass
    finally:
        await backend.aclose()


@pytest.mark.asyncio
async def test_a_route_requiring_transactions_fails_at_start_on_a_standalone_server(
    standalone: LocalMongoServer,
) -> None:
    config = {
        "backends": {"docs": {"plugin": "mongodb", "url": standalone.url}},
        "routes": {"ledger": {"backend": "docs", "requires": ["transactions"]}},
    }
    with pytest.raises(RouteRequirementError) as info:
        async with Polystore.from_config(config):
            pass
    assert info.value.missing == ("transactions",)
