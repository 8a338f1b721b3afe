"""The conformance suite on the embedded backends."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest_asyncio

from polystore.backends.memory import MemoryBackend, MemorySettings
from polystore.backends.sqlite import SqliteBackend, SqliteSettings
from polystore.protocol import DataStore
from polystore.testing import StoreConformance


class TestMemoryStore(StoreConformance):
    @pytest_asyncio.fixture
    async def backend(self) -> AsyncIterator[MemoryBackend]:
        async with MemoryBackend(MemorySettings()) as backend:
            yield backend

    @pytest_asyncio.fixture
    async def store(self, backend: MemoryBackend) -> DataStore:
        return backend.namespace(f"t-{uuid.uuid4().hex}")

    @pytest_asyncio.fixture
    async def sibling_store(self, backend: MemoryBackend) -> DataStore:
        return backend.namespace(f"s-{uuid.uuid4().hex}")


class TestSqliteStore(StoreConformance):
    @pytest_asyncio.fixture
    async def backend(self, tmp_path: Path) -> AsyncIterator[SqliteBackend]:
        settings = SqliteSettings(path=str(tmp_path / "db.sqlite"), synchronous="NORMAL")
        async with SqliteBackend(settings) as backend:
            yield backend

    @pytest_asyncio.fixture
    async def store(self, backend: SqliteBackend) -> DataStore:
        return backend.namespace("primary")

    @pytest_asyncio.fixture
    async def sibling_store(self, backend: SqliteBackend) -> DataStore:
        return backend.namespace("sibling")
