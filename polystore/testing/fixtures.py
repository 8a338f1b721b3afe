"""pytest plugin with session-scoped real-server fixtures.

Each fixture yields a started :class:`~polystore.testing.services.ServiceEndpoint`
(see :func:`~polystore.testing.services.resolve_service` for where the server
comes from) and closes it at the end of the session, also when tests fail.
Fault tests that stop or kill a server must start it again before they end,
since the endpoint is shared by the whole session.

When no server can be provided the fixture errors, unless skipping is allowed
with ``--polystore-allow-skip`` or ``POLYSTORE_TEST_ALLOW_SKIP=1``.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Iterator

import pytest

from polystore.testing._replica import LocalPostgresReplicaSet
from polystore.testing.services import (
    ALLOW_SKIP_ENV,
    ServiceEndpoint,
    ServiceUnavailable,
    resolve_service,
)

__all__ = [
    "ALLOW_SKIP_OPTION",
    "mongodb_service",
    "postgres_replica_service",
    "postgres_service",
    "pytest_addoption",
    "pytest_configure",
    "redis_cluster_service",
    "redis_service",
    "skip_allowed",
]

ALLOW_SKIP_OPTION = "--polystore-allow-skip"


def pytest_addoption(parser: pytest.Parser) -> None:
    """Register ``--polystore-allow-skip``."""
    group = parser.getgroup("polystore")
    # Already registered when the plugin is loaded under two module names.
    with contextlib.suppress(ValueError):
        group.addoption(
            ALLOW_SKIP_OPTION,
            action="store_true",
            default=False,
            help="skip tests whose server (Redis, PostgreSQL, MongoDB) cannot be provided, "
            f"instead of failing them (same as {ALLOW_SKIP_ENV}=1)",
        )


LOOP_SCOPE_UNSET = 'The configuration option "asyncio_default_fixture_loop_scope" is unset'


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    """Keep pytest-asyncio's "loop scope is unset" warning out of suites using the kit.

    Runs before pytest-asyncio's own ``pytest_configure``, inside the warning filters
    pytest sets up for configuration. Every asynchronous fixture of the kit names its
    loop scope itself, so the unset default changes nothing for it; a suite that sets
    ``asyncio_default_fixture_loop_scope`` keeps its own choice.
    """
    warnings.filterwarnings(
        "ignore", message=LOOP_SCOPE_UNSET, category=pytest.PytestDeprecationWarning
    )


def skip_allowed(config: pytest.Config) -> bool:
    """Whether missing servers skip tests instead of failing them.

    Args:
        config: The pytest config.

    Returns:
        True if ``--polystore-allow-skip`` was given or ``POLYSTORE_TEST_ALLOW_SKIP``
        is ``1``/``true``/``yes``/``on``.
    """
    if os.environ.get(ALLOW_SKIP_ENV, "").strip().lower() in ("1", "true", "yes", "on"):
        return True
    return bool(config.getoption("polystore_allow_skip", default=False))


def _serve(request: pytest.FixtureRequest, name: str) -> Iterator[ServiceEndpoint]:
    endpoint = resolve_service(name, allow_skip=skip_allowed(request.config))
    try:
        yield endpoint
    finally:
        endpoint.close()


@pytest.fixture(scope="session")
def redis_service(request: pytest.FixtureRequest) -> Iterator[ServiceEndpoint]:
    """A Redis server; ``url`` is ``redis://HOST:PORT/0``. Fsyncs its AOF on every write."""
    yield from _serve(request, "redis")


@pytest.fixture(scope="session")
def postgres_service(request: pytest.FixtureRequest) -> Iterator[ServiceEndpoint]:
    """A PostgreSQL server; ``url`` is ``postgresql://postgres@HOST:PORT/postgres``."""
    yield from _serve(request, "postgres")


@pytest.fixture(scope="session")
def mongodb_service(request: pytest.FixtureRequest) -> Iterator[ServiceEndpoint]:
    """A MongoDB-compatible server with transactions; ``url`` is ``mongodb://HOST:PORT/?...``."""
    yield from _serve(request, "mongodb")


@pytest.fixture(scope="session")
def redis_cluster_service(request: pytest.FixtureRequest) -> Iterator[ServiceEndpoint]:
    """A 3-master Redis Cluster; ``url`` is a seed node and, when local, ``nodes`` its servers."""
    yield from _serve(request, "redis_cluster")


@pytest.fixture(scope="session")
def postgres_replica_service(
    request: pytest.FixtureRequest,
) -> Iterator[LocalPostgresReplicaSet]:
    """A private PostgreSQL primary with a streaming standby (a ``LocalPostgresReplicaSet``).

    ``url`` is the primary's, ``standby_url`` the standby's, ``multi_host_url`` both with
    ``target_session_attrs=read-write``; ``primary`` and ``standby`` are the two servers.
    Tests that stop one must start it again; a test that promotes the standby needs a
    ``LocalPostgresReplicaSet`` of its own.
    """
    try:
        endpoint = LocalPostgresReplicaSet()
    except ServiceUnavailable as exc:
        if skip_allowed(request.config):
            pytest.skip(str(exc))
        raise
    try:
        endpoint.start()
        yield endpoint
    finally:
        endpoint.close()
