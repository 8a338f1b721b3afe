"""The shared conformance suite against a private PostgreSQL server."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest_asyncio
from polystore_postgres import PostgresBackend, PostgresSettings
from polystore_postgres.partitions import Partitioning

from polystore import DataStore
from polystore.testing import LocalPostgresReplicaSet, StoreConformance
from polystore.testing.services import ServiceEndpoint


class TestPostgresStore(StoreConformance):
    @pytest_asyncio.fixture
    async def backend(self, postgres_service: ServiceEndpoint) -> AsyncIterator[PostgresBackend]:
        settings = PostgresSettings(url=postgres_service.url, reap_interval=None)
        async with PostgresBackend(settings) as backend:
            yield backend

    @pytest_asyncio.fixture
    async def store(self, backend: PostgresBackend) -> DataStore:
        return backend.namespace(f"t-{uuid.uuid4().hex[:12]}")

    @pytest_asyncio.fixture
    async def sibling_store(self, backend: PostgresBackend) -> DataStore:
        return backend.namespace(f"s-{uuid.uuid4().hex[:12]}")


class TestPostgresStoreReadingFromAStandby(StoreConformance):
    """Every behaviour holds when reads go to a streaming standby (read-your-writes)."""

    @pytest_asyncio.fixture
    async def backend(
        self, postgres_replica_service: LocalPostgresReplicaSet
    ) -> AsyncIterator[PostgresBackend]:
        settings = PostgresSettings(
            url=postgres_replica_service.url,
            replica_urls=[postgres_replica_service.standby_url],
            read_from="replica",
            reap_interval=None,
        )
        async with PostgresBackend(settings) as backend:
            yield backend

    @pytest_asyncio.fixture
    async def store(self, backend: PostgresBackend) -> DataStore:
        return backend.namespace(f"t-{uuid.uuid4().hex[:12]}")

    @pytest_asyncio.fixture
    async def sibling_store(self, backend: PostgresBackend) -> DataStore:
        return backend.namespace(f"s-{uuid.uuid4().hex[:12]}")


class TestPostgresStoreOnAHashPartitionedTable(StoreConformance):
    """Every behaviour holds on a table partitioned by hash of the key."""

    @pytest_asyncio.fixture
    async def backend(self, postgres_service: ServiceEndpoint) -> AsyncIterator[PostgresBackend]:
        settings = PostgresSettings(
            url=postgres_service.url,
            reap_interval=None,
            partitioning=Partitioning(by="hash", partitions=4),
        )
        async with PostgresBackend(settings) as backend:
            yield backend

    @pytest_asyncio.fixture
    async def store(self, backend: PostgresBackend) -> DataStore:
        return backend.namespace(f"t-{uuid.uuid4().hex[:12]}")

    @pytest_asyncio.fixture
    async def sibling_store(self, backend: PostgresBackend) -> DataStore:
        return backend.namespace(f"s-{uuid.uuid4().hex[:12]}")
