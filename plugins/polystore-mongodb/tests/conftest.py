"""Fixtures of the MongoDB backend tests.

``mongodb_service`` (a private MongoDB-compatible server for the session) comes from
``polystore.testing``, enabled in the repository's top-level ``conftest.py``.
"""

from __future__ import annotations

import gc
import uuid
import warnings
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
import pytest_asyncio
from polystore_mongodb import MongoBackend, MongoDBStore, MongoSettings

from polystore.testing import LocalMongoServer
from polystore.testing.fixtures import skip_allowed
from polystore.testing.services import ServiceEndpoint, ServiceUnavailable

TEST_DATABASE = f"polystore_tests_{uuid.uuid4().hex[:8]}"
"""One database per test session. Collections are not dropped after each test (the test
server's drop is slow); a private server's data goes away with it at the session's end."""

SettingsFactory = Callable[..., MongoSettings]


@pytest.fixture
def make_settings(mongodb_service: ServiceEndpoint) -> SettingsFactory:
    """Build settings for the session's server and the test database."""

    def build(url: str | None = None, **options: Any) -> MongoSettings:
        options.setdefault("database", TEST_DATABASE)
        # The timeout bounds a whole call, and a 10 000-item batch is one call: the test
        # server is slow, more so when the machine is busy.
        options.setdefault("timeout", 120.0)
        # The test server (SecantusDB) evaluates ``$in`` in time quadratic in the list's
        # length; smaller queries keep the 10 000-key batch tests fast on it.
        options.setdefault("keys_per_query", 100)
        return MongoSettings(url=url or mongodb_service.url, **options)

    return build


@pytest_asyncio.fixture
async def mongo_backend(make_settings: SettingsFactory) -> AsyncIterator[MongoBackend]:
    """An open backend on the session's server."""
    async with MongoBackend(make_settings()) as backend:
        yield backend


def _new_store(backend: MongoBackend, tag: str) -> MongoDBStore:
    store = backend.namespace(f"{tag}-{uuid.uuid4().hex[:12]}")
    assert isinstance(store, MongoDBStore)
    return store


@pytest.fixture
def mongo_store(mongo_backend: MongoBackend) -> MongoDBStore:
    """A fresh namespace."""
    return _new_store(mongo_backend, "t")


@pytest.fixture
def mongo_sibling_store(mongo_backend: MongoBackend) -> MongoDBStore:
    """Another fresh namespace of the same backend."""
    return _new_store(mongo_backend, "s")


@pytest.fixture(scope="module")
def private_mongo(request: pytest.FixtureRequest) -> Iterator[Callable[..., LocalMongoServer]]:
    """Start dedicated servers (real storage directory, ``--sync-on-commit``).

    For tests that kill, restart or reconfigure a server without disturbing the
    session's shared one. Call it with extra ``secantusd-py`` arguments; the servers are
    closed (and their data removed) at the end of the test module.
    """
    servers: list[LocalMongoServer] = []

    def start(*extra_args: str, begin: bool = True) -> LocalMongoServer:
        try:
            server = LocalMongoServer(extra_args=extra_args)
        except ServiceUnavailable as exc:
            if skip_allowed(request.config):
                pytest.skip(str(exc))
            raise
        servers.append(server)
        if begin:
            server.start()
        return server

    yield start
    for server in servers:
        server.close()


@pytest.fixture
def reap_driver_sockets() -> Iterator[None]:
    """Collect sockets PyMongo leaks when a client closes while its monitor connects.

    PyMongo's asyncio connect does not close its socket when the connecting task is
    cancelled, which ``AsyncMongoClient.close()`` does to a monitor that is reconnecting
    to an unreachable server. Tests that close a client in that state use this fixture:
    the leaked sockets are collected at teardown with their ``ResourceWarning`` silenced,
    instead of surfacing later in an unrelated test.
    """
    yield
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()
