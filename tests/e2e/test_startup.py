"""Start-up against real servers: one typed error when a required backend cannot open,
nothing left behind, and optional backends the application starts without."""

from __future__ import annotations

import asyncio
import gc
import time
import tracemalloc
import uuid
import warnings
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncpg  # type: ignore[import-untyped,unused-ignore]
import pytest
import pytest_asyncio

from polystore import Polystore
from polystore.errors import (
    PolystoreError,
    RouteRequirementError,
    StoreUnavailableError,
)
from polystore.testing import LocalRedisServer, ServiceEndpoint, eventually
from polystore.testing._servers import redis_command
from polystore.testing.services import free_port

DOWN_TIMEOUT = 2.0
"""Timeout of a backend whose server is down (MongoDB waits this long to select a server)."""


def _refused_url(plugin: str) -> str:
    port = free_port()  # nothing listens there: connections are refused
    return {
        "redis": f"redis://127.0.0.1:{port}/0",
        "mongodb": f"mongodb://127.0.0.1:{port}/?directConnection=true",
        "postgres": f"postgresql://postgres@127.0.0.1:{port}/postgres",
    }[plugin]


def _redis_clients(url: str) -> int:
    info = redis_command(urlsplit(url).port or 6379, "INFO", "clients")
    fields = dict(line.split(":", 1) for line in info.splitlines() if ":" in line)
    return int(fields["connected_clients"])


async def _postgres_sessions(url: str, application: str) -> int:
    conn = await asyncpg.connect(url)
    try:
        count = await conn.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1", application
        )
    finally:
        await conn.close()
    return int(count)


def _stray_tasks() -> set[asyncio.Task[Any]]:
    return {task for task in asyncio.all_tasks() if task is not asyncio.current_task()}


@pytest.fixture
def app_name() -> str:
    return f"startup-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def config(
    tmp_path: Path,
    redis_service: ServiceEndpoint,
    postgres_service: ServiceEndpoint,
    mongodb_service: ServiceEndpoint,
    app_name: str,
) -> dict[str, Any]:
    """Four healthy backends, one route on each."""
    return {
        "backends": {
            "cache": {"plugin": "redis", "url": redis_service.url, "timeout": DOWN_TIMEOUT},
            "docs": {
                "plugin": "mongodb",
                "url": mongodb_service.url,
                "database": "startup_tests",
                "timeout": 30.0,
            },
            "ledger": {
                "plugin": "postgres",
                "url": postgres_service.url,
                "application_name": app_name,
                "connect_timeout": DOWN_TIMEOUT,
            },
            "local": {"plugin": "sqlite", "path": str(tmp_path / "local.db")},
        },
        "routes": {
            "sessions": {"backend": "cache", "requires": ["ttl"]},
            "profiles": {"backend": "docs", "requires": ["query"]},
            "transactions": {"backend": "ledger"},
            "notes": {"backend": "local"},
        },
    }


def _down(config: dict[str, Any], backend: str, **options: Any) -> None:
    settings = config["backends"][backend]
    settings["url"] = _refused_url(settings["plugin"])
    settings["timeout"] = DOWN_TIMEOUT
    settings.update(options)


def _driver_defect(warning: warnings.WarningMessage) -> bool:
    """A socket PyMongo's server monitor was connecting when its client closed.

    PyMongo 4.20 leaks it (``_async_create_connection`` closes its socket on OSError but
    not on cancellation; PYTHON-5867, fixed upstream after 4.20.1). Only that allocation
    site is excused, found by where the socket was allocated.
    """
    allocated = tracemalloc.get_object_traceback(warning.source)
    return allocated is not None and any(
        frame.filename.endswith("pool_shared.py") and "pymongo" in frame.filename
        for frame in allocated
    )


@dataclass(frozen=True)
class Failure:
    """What ``start()`` raised (the error itself is dropped before looking for leaks)."""

    error: type[PolystoreError]
    backend: str | None
    operation: str | None
    chained: bool
    text: str


async def _start_fails(config: dict[str, Any]) -> Failure:
    """Start, expect a failure; check nothing is left running or unclosed."""
    ps = Polystore.from_config(config)
    tracemalloc.start(12)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                await ps.start()
            except PolystoreError as exc:
                failure = Failure(
                    type(exc), exc.backend, exc.operation, exc.__cause__ is not None, str(exc)
                )
            else:
                raise AssertionError("start() succeeded")
            await asyncio.sleep(0.1)  # a task left running would still be pending now
            assert _stray_tasks() == set()
            gc.collect()  # unclosed sockets and connections warn when collected
        leaks = [str(w.message) for w in caught if not _driver_defect(w)]
    finally:
        tracemalloc.stop()
    assert leaks == []
    assert ps.backends == {}
    return failure


@pytest.mark.asyncio
@pytest.mark.parametrize("backend", ["cache", "docs", "ledger"])
async def test_a_required_backend_that_is_down_fails_start_with_one_error_naming_it(
    config: dict[str, Any], app_name: str, redis_service: ServiceEndpoint, backend: str
) -> None:
    _down(config, backend)
    clients_before = _redis_clients(redis_service.url)

    failure = await _start_fails(config)

    assert issubclass(failure.error, StoreUnavailableError)
    assert failure.backend == backend
    assert failure.operation == "open"
    assert failure.chained  # to the driver's error
    assert _redis_clients(redis_service.url) <= clients_before
    postgres_url = config["backends"]["ledger"]["url"]
    if backend != "ledger":
        assert await _postgres_sessions(postgres_url, app_name) == 0


@pytest.mark.asyncio
async def test_with_two_backends_down_the_error_names_the_first_configured(
    config: dict[str, Any],
) -> None:
    _down(config, "docs")
    _down(config, "cache")

    failure = await _start_fails(config)

    assert issubclass(failure.error, StoreUnavailableError)
    assert failure.backend == "cache"


@pytest.mark.asyncio
async def test_a_failed_start_can_be_retried_once_the_server_is_back(
    config: dict[str, Any], redis_service: ServiceEndpoint
) -> None:
    healthy = config["backends"]["cache"]["url"]
    _down(config, "cache")
    await _start_fails(config)
    config["backends"]["cache"]["url"] = healthy

    async with Polystore.from_config(config) as ps:
        await ps.route("sessions").save("k", {"v": 1}, ttl=60)
        assert await ps.route("sessions").get("k") == {"v": 1}


# -- optional backends -----------------------------------------------------------------


@pytest.fixture
def late_redis() -> Iterator[LocalRedisServer]:
    """A Redis server on a known port, not started yet."""
    server = LocalRedisServer(port=free_port())
    try:
        yield server
    finally:
        server.close()


@pytest_asyncio.fixture
async def started(config: dict[str, Any], late_redis: LocalRedisServer) -> AsyncIterator[Polystore]:
    """The application with its ``cache`` backend optional and its server down."""
    config["backends"]["cache"].update(url=late_redis.url, required=False)
    async with Polystore.from_config(config) as ps:
        yield ps


@pytest.mark.asyncio
async def test_an_optional_backend_that_is_down_does_not_stop_the_others(
    started: Polystore,
) -> None:
    await started.route("profiles").save("p1", {"name": "Ada"})
    await started.route("transactions").save("t1", {"amount": "1.00"})
    await started.route("notes").save("n1", "hello")

    assert await started.route("profiles").get("p1") == {"name": "Ada"}
    assert await started.route("notes").get("n1") == "hello"


@pytest.mark.asyncio
async def test_the_routes_of_an_optional_backend_that_is_down_fail_fast_and_typed(
    started: Polystore,
) -> None:
    sessions = started.route("sessions")
    began = time.monotonic()
    for _ in range(20):
        with pytest.raises(StoreUnavailableError) as raised:
            await sessions.get("k")
    elapsed = time.monotonic() - began

    assert raised.value.backend == "cache"
    assert "optional backend 'cache' is not available" in str(raised.value)
    # No I/O: twenty refusals take less than one connection attempt may take.
    assert elapsed < DOWN_TIMEOUT
    with pytest.raises(StoreUnavailableError):
        sessions.scan()


@pytest.mark.asyncio
async def test_an_optional_backend_is_used_once_its_server_answers_without_a_restart(
    started: Polystore, late_redis: LocalRedisServer
) -> None:
    sessions = started.route("sessions")
    late_redis.start()

    async def answers() -> bool:
        try:
            await sessions.save("k", {"v": 1}, ttl=60)
        except StoreUnavailableError:
            return False
        return True

    assert await eventually(answers, timeout=30.0, every=0.1)
    assert await sessions.get("k") == {"v": 1}
    assert started.routes["sessions"].capabilities.names() == sessions.capabilities.names()
    assert "durable" in sessions.capabilities.names()  # detected once the backend opened


@pytest.mark.asyncio
async def test_an_optional_backend_is_still_checked_against_what_its_plugin_can_provide(
    config: dict[str, Any],
) -> None:
    _down(config, "cache", required=False)
    config["routes"]["sessions"]["requires"] = ["ttl", "query"]  # Redis never has QUERY

    with pytest.raises(RouteRequirementError) as raised:
        await Polystore.from_config(config).start()

    assert raised.value.missing == ("query",)


@pytest.mark.asyncio
async def test_a_route_the_optional_backend_does_not_satisfy_once_open_is_refused(
    config: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    lazy = LocalRedisServer(port=free_port(), extra_args=["--appendfsync", "everysec"])
    try:
        config["backends"]["cache"].update(url=lazy.url, required=False)
        config["routes"]["sessions"]["requires"] = ["ttl", "durable"]
        async with Polystore.from_config(config) as ps:
            sessions = ps.route("sessions")
            lazy.start()

            async def refused_for_its_requirements() -> bool:
                try:
                    await sessions.get("k")
                except RouteRequirementError:
                    return True
                except StoreUnavailableError:
                    return False
                raise AssertionError("the route answered without the durability it requires")

            assert await eventually(refused_for_its_requirements, timeout=30.0, every=0.1)
            assert "route 'sessions' requires durable" in caplog.text
    finally:
        lazy.close()


@pytest.mark.asyncio
async def test_an_optional_backend_with_bad_settings_still_fails_start(
    config: dict[str, Any],
) -> None:
    config["backends"]["docs"].update(url="mongodb://127.0.0.1:99999/", required=False)

    with pytest.raises(PolystoreError) as raised:
        await Polystore.from_config(config).start()

    assert "backends.docs.url" in str(raised.value)


@pytest.mark.asyncio
async def test_a_replicated_route_serves_with_an_optional_replica_down(
    config: dict[str, Any], late_redis: LocalRedisServer
) -> None:
    config["backends"]["cache"].update(url=late_redis.url, required=False)
    config["routes"] = {"carts": {"replicas": ["cache", "docs", "ledger"]}}
    async with Polystore.from_config(config) as ps:
        carts = ps.route("carts")
        await carts.save("c1", {"items": 2})  # two of three replicas: the majority

        assert await carts.get("c1") == {"items": 2}
