"""The shared conformance suite against a MongoDB-compatible server."""

from __future__ import annotations

import pytest_asyncio
from polystore_mongodb import MongoDBStore

from polystore import Capabilities, DataStore
from polystore.testing import StoreConformance

EVERY_CAPABILITY = (
    Capabilities.TTL
    | Capabilities.CAS
    | Capabilities.SCAN
    | Capabilities.QUERY
    | Capabilities.SHARED
    | Capabilities.DURABLE
    | Capabilities.TRANSACTIONS
)


class TestMongoDBStore(StoreConformance):
    @pytest_asyncio.fixture
    async def store(self, mongo_store: MongoDBStore) -> DataStore:
        # The test server is a one-node replica set, so every capability is declared
        # and every test of the suite runs.
        assert mongo_store.capabilities == EVERY_CAPABILITY
        return mongo_store

    @pytest_asyncio.fixture
    async def sibling_store(self, mongo_sibling_store: MongoDBStore) -> DataStore:
        return mongo_sibling_store
