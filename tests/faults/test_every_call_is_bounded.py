"""Every call ends within its timeout, on every server backend, with its server killed or
frozen — with the default retries and circuit breaker — and serves again once it is back.

Each backend gets a private server of this module's own (the test kit's local
launchers), so killing or freezing it disturbs no other test. Fault controls run in a
thread so the event loop keeps going, as it would in an application.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from polystore import (
    Capabilities,
    CircuitOpenError,
    DataStore,
    Polystore,
    StoreTimeoutError,
    StoreUnavailableError,
    UnknownOutcomeError,
)
from polystore.testing import eventually
from polystore.testing.fixtures import skip_allowed
from polystore.testing.services import ServiceEndpoint, resolve_service

pytestmark = pytest.mark.asyncio

TIMEOUT = 1.0
PROMISE = TIMEOUT + 0.5
"""The documented bound: a call's timeout plus half a second."""
TYPED = (StoreTimeoutError, StoreUnavailableError, UnknownOutcomeError, CircuitOpenError)
BURST = 40
"""Concurrent saves on top of one call of each kind (more than any pool holds)."""


@pytest.fixture(scope="module", params=["redis", "postgres", "mongodb"])
def server(request: pytest.FixtureRequest) -> Iterator[ServiceEndpoint]:
    endpoint = resolve_service(request.param, allow_skip=skip_allowed(request.config))
    try:
        if endpoint.provider == "url":
            pytest.skip("fault tests need a private server; unset POLYSTORE_TEST_*_URL")
        yield endpoint
    finally:
        endpoint.close()


@dataclass
class Outcome:
    call: str
    seconds: float
    error: BaseException | None


@pytest_asyncio.fixture
async def app(server: ServiceEndpoint, tmp_path: Path) -> AsyncIterator[Polystore]:
    config = {
        "backends": {
            # Default retries and breaker: only the timeout is set.
            "faulty": {"plugin": server.name, "url": server.url, "timeout": TIMEOUT},
            "local": {"plugin": "sqlite", "path": str(tmp_path / "local.sqlite")},
        },
        "routes": {
            "items": {"backend": "faulty", "namespace": f"b-{uuid.uuid4().hex[:10]}"},
            "notes": {"backend": "local"},
        },
    }
    try:
        async with Polystore.from_config(config) as polystore:
            yield polystore
    finally:
        await asyncio.to_thread(server.start)  # after a kill; a no-op when it runs


async def _timed(call: str, work: Callable[[], Awaitable[Any]]) -> Outcome:
    started = time.monotonic()
    try:
        await work()
    except TYPED as exc:
        return Outcome(call, time.monotonic() - started, exc)
    return Outcome(call, time.monotonic() - started, None)


async def _first_key(store: DataStore) -> str | None:
    async for key in store.scan(prefix="k"):
        return key
    return None


async def _transaction(store: DataStore) -> None:
    async with store.transaction() as tx:
        await tx.save("t", 1)


def _calls(store: DataStore, version: str) -> dict[str, Callable[[], Awaitable[Any]]]:
    calls: dict[str, Callable[[], Awaitable[Any]]] = {
        "get": lambda: store.get("k"),
        "get_entry": lambda: store.get_entry("k"),
        "save": lambda: store.save("k2", {"a": 2}),
        "save CAS": lambda: store.save("k", {"a": 3}, if_version=version),
        "delete": lambda: store.delete("k3"),
        "exists": lambda: store.exists("k"),
        "get_many": lambda: store.get_many(["k", "k2"]),
        "save_many": lambda: store.save_many({"m1": 1, "m2": 2}),
        "delete_many": lambda: store.delete_many(["m1", "m2"]),
        "scan": lambda: _first_key(store),
    }
    if Capabilities.QUERY in store.capabilities:
        calls["find"] = lambda: store.find({"a": 1})
    if Capabilities.TRANSACTIONS in store.capabilities:
        calls["transaction"] = lambda: _transaction(store)
    for number in range(BURST):
        calls[f"save #{number}"] = lambda n=number: store.save(f"b{n}", n)  # type: ignore[misc]
    return calls


async def _control(server: ServiceEndpoint, action: str) -> None:
    """Run ``server.<action>()`` (kill, start, pause, resume) in a thread."""
    await asyncio.to_thread(getattr(server, action))


async def _serves(store: DataStore) -> bool:
    try:
        await store.save("back", 1)
        return await store.get("back") == 1
    except TYPED:
        return False


@pytest.mark.parametrize("fault", ["killed", "frozen"])
async def test_every_call_ends_within_its_timeout_with_a_typed_error_then_serves_again(
    server: ServiceEndpoint, app: Polystore, fault: str
) -> None:
    store = app.route("items")
    version = await store.save("k", {"a": 1})
    assert await _first_key(store) == "k"
    await _control(server, "kill" if fault == "killed" else "pause")
    try:
        outcomes = await asyncio.gather(
            *(_timed(name, call) for name, call in _calls(store, version).items()),
            _timed("health", app.health),
        )
        health = await _timed("health", app.health)
    finally:
        await _control(server, "start" if fault == "killed" else "resume")

    calls = outcomes[:-1]
    late = [(o.call, round(o.seconds, 2)) for o in [*outcomes, health] if o.seconds > PROMISE]
    assert late == []
    succeeded = [o.call for o in calls if o.error is None]
    assert succeeded == []  # every call failed, and with one of the typed errors (_timed)
    assert any(not isinstance(o.error, CircuitOpenError) for o in calls)
    assert await eventually(lambda: _serves(store), timeout=30)
    assert await store.get("k") in ({"a": 1}, {"a": 3})  # a CAS with an unknown outcome


async def test_polystore_health_reports_a_frozen_backend_within_its_timeout(
    server: ServiceEndpoint, app: Polystore
) -> None:
    await app.route("items").save("k", 1)
    await _control(server, "pause")
    try:
        started = time.monotonic()
        report = await app.health()
        seconds = time.monotonic() - started
    finally:
        await _control(server, "resume")
    assert seconds <= PROMISE
    assert report["faulty"].ok is False
    assert report["local"].ok is True
    assert await eventually(lambda: _serves(app.route("items")), timeout=30)
    assert (await app.health())["faulty"].ok is True
