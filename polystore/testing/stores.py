"""Per-test stores: a fresh namespace on the session's server, removed after the test.

Like pytest-redis' ``redisdb`` or pytest-postgresql's ``postgresql``, each fixture gives a
test a clean :class:`~polystore.protocol.DataStore` on the server of ``redis_service``,
``postgres_service`` or ``mongodb_service``::

    async def test_profiles_are_found_by_city(mongodb_store):
        await mongodb_store.save("u1", {"city": "Paris"})
        assert [e.key for e in await mongodb_store.find({"city": "Paris"})] == ["u1"]

The namespace is ``test-<random>``; afterwards every key in it is deleted, and the
PostgreSQL table or MongoDB collection behind it is dropped. The backend's plugin must be
installed (``polystore-redis``, ``polystore-postgres``, ``polystore-mongodb``).
"""

from __future__ import annotations

import importlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
import pytest_asyncio

from polystore.protocol import DataStore
from polystore.testing.fixtures import skip_allowed
from polystore.testing.services import ServiceEndpoint

__all__ = ["fresh_namespace", "mongodb_store", "postgres_store", "redis_store"]


def fresh_namespace() -> str:
    """A namespace name no other test uses."""
    return f"test-{uuid.uuid4().hex[:16]}"


def _plugin(request: pytest.FixtureRequest, module: str, distribution: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError:
        message = f"this fixture needs the {distribution} plugin: pip install {distribution}"
        if skip_allowed(request.config):
            pytest.skip(message)
        pytest.fail(message, pytrace=False)


async def _empty(store: DataStore) -> None:
    keys = [key async for key in store.scan()]
    if keys:
        await store.delete_many(keys)


@asynccontextmanager
async def _namespace(
    backend: Any, drop: Callable[[DataStore], Awaitable[None]] = _empty
) -> AsyncIterator[DataStore]:
    async with backend:
        store: DataStore = backend.namespace(fresh_namespace())
        try:
            yield store
        finally:
            await drop(store)


@pytest_asyncio.fixture(loop_scope="function")
async def redis_store(
    request: pytest.FixtureRequest, redis_service: ServiceEndpoint
) -> AsyncIterator[DataStore]:
    """A fresh Redis namespace for one test; its keys are deleted afterwards."""
    plugin = _plugin(request, "polystore_redis", "polystore-redis")
    backend = plugin.RedisBackend(plugin.RedisSettings(url=redis_service.url))
    async with _namespace(backend) as store:
        yield store


@pytest_asyncio.fixture(loop_scope="function")
async def postgres_store(
    request: pytest.FixtureRequest, postgres_service: ServiceEndpoint
) -> AsyncIterator[DataStore]:
    """A fresh PostgreSQL namespace (a table) for one test; the table is dropped afterwards."""
    plugin = _plugin(request, "polystore_postgres", "polystore-postgres")
    backend = plugin.PostgresBackend(plugin.PostgresSettings(url=postgres_service.url))

    async def drop_table(store: DataStore) -> None:
        table = getattr(store, "table", None)  # None until the store created its table
        if table is None:
            return
        conn = await backend.acquire(backend.settings.timeout)
        try:
            # The plugin's own quoted, schema-qualified name; nothing from outside.
            await conn.execute(f"DROP TABLE IF EXISTS {table}")
        finally:
            await backend.release(conn)

    async with _namespace(backend, drop_table) as store:
        yield store


@pytest_asyncio.fixture(loop_scope="function")
async def mongodb_store(
    request: pytest.FixtureRequest, mongodb_service: ServiceEndpoint
) -> AsyncIterator[DataStore]:
    """A fresh MongoDB namespace (a collection) for one test; it is dropped afterwards."""
    plugin = _plugin(request, "polystore_mongodb", "polystore-mongodb")
    backend = plugin.MongoBackend(plugin.MongoSettings(url=mongodb_service.url))

    async def drop_collection(store: DataStore) -> None:
        collection = await store.collection()  # type: ignore[attr-defined]
        await collection.drop()

    async with _namespace(backend, drop_collection) as store:
        yield store
