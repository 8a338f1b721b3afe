"""Fixtures of the polystore-redis tests.

The session servers (``redis_service``, ``redis_cluster_service``) come from the
``polystore.testing`` pytest plugin, enabled by the repository's top-level conftest
(``pytest_plugins = ["polystore.testing"]``). Tests that change a server's configuration
or kill it get a dedicated private server from :func:`private_redis`.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import pytest

from polystore.testing import LocalRedisServer
from polystore.testing.fixtures import skip_allowed
from polystore.testing.services import ServiceUnavailable

StartRedis = Callable[..., LocalRedisServer]


@pytest.fixture
def private_redis(request: pytest.FixtureRequest) -> Iterator[StartRedis]:
    """Start dedicated ``redis-server`` processes (extra arguments as given); all closed after."""
    servers: list[LocalRedisServer] = []

    def start(*extra_args: str) -> LocalRedisServer:
        try:
            server = LocalRedisServer(extra_args=extra_args, name="redis-private")
        except ServiceUnavailable as exc:
            if skip_allowed(request.config):
                pytest.skip(str(exc))
            raise
        servers.append(server)
        server.start()
        return server

    yield start
    for server in servers:
        server.close()


@pytest.fixture
def namespace() -> str:
    """A namespace name no other test uses."""
    return f"t-{uuid.uuid4().hex[:12]}"
