"""Fault tests on a dedicated private server: kills, restarts, a hung server.

Each test leaves the server running. Fault controls run in a thread so the event loop
keeps going, as it would in an application while its database restarts.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import pytest_asyncio
from polystore_postgres import PostgresBackend, PostgreSQLStore, PostgresSettings

from polystore import (
    JSONValue,
    RetrySettings,
    StoreTimeoutError,
    StoreUnavailableError,
    UnknownOutcomeError,
)
from polystore.testing import LocalPostgresServer
from polystore.testing.fixtures import skip_allowed
from polystore.testing.services import ServiceEndpoint, resolve_service

pytestmark = pytest.mark.asyncio

TIMEOUT = 2.0
SLACK = 1.5


@pytest.fixture(scope="module")
def server(request: pytest.FixtureRequest) -> Iterator[ServiceEndpoint]:
    """A server of this module's own, so killing it disturbs no other test."""
    endpoint = resolve_service("postgres", allow_skip=skip_allowed(request.config))
    try:
        if endpoint.provider == "url":
            pytest.skip("fault tests need a private server; unset POLYSTORE_TEST_POSTGRES_URL")
        yield endpoint
    finally:
        endpoint.close()


@pytest_asyncio.fixture
async def store(server: ServiceEndpoint) -> AsyncIterator[PostgreSQLStore]:
    settings = PostgresSettings(
        url=server.url,
        timeout=TIMEOUT,
        connect_timeout=TIMEOUT,
        reap_interval=None,
        retry=RetrySettings(attempts=1),
    )
    try:
        async with PostgresBackend(settings) as backend:
            store = backend.namespace(f"f-{uuid.uuid4().hex[:12]}")
            assert isinstance(store, PostgreSQLStore)
            await store.prepare()
            yield store
    finally:
        await asyncio.to_thread(server.start)


class _Workload:
    """Writers and readers that record acknowledged writes and every failure."""

    def __init__(self, store: PostgreSQLStore) -> None:
        self.store = store
        self.acknowledged: dict[str, JSONValue] = {}
        self.write_errors: list[tuple[float, Exception]] = []
        self.read_errors: list[tuple[float, Exception]] = []
        self.stop = asyncio.Event()

    async def writer(self, number: int) -> None:
        i = 0
        while not self.stop.is_set():
            i += 1
            key, value = f"w{number}-{i}", {"writer": number, "i": i}
            started = time.monotonic()
            try:
                await self.store.save(key, value)
            except (StoreUnavailableError, UnknownOutcomeError) as exc:
                self.write_errors.append((time.monotonic() - started, exc))
                await asyncio.sleep(0.02)
            else:
                self.acknowledged[key] = value

    async def reader(self) -> None:
        while not self.stop.is_set():
            started = time.monotonic()
            try:
                await self.store.get("w0-1")
            except StoreUnavailableError as exc:
                self.read_errors.append((time.monotonic() - started, exc))
                await asyncio.sleep(0.02)

    async def run_while(self, fault: Any, *, before: float = 0.5, after: float = 1.0) -> None:
        tasks = [asyncio.create_task(self.writer(n)) for n in range(4)]
        tasks += [asyncio.create_task(self.reader()) for _ in range(2)]
        await asyncio.sleep(before)
        await asyncio.to_thread(fault)
        await asyncio.sleep(after)
        self.stop.set()
        await asyncio.gather(*tasks)  # any other exception type fails the test here


async def test_a_killed_server_fails_calls_quickly_and_serves_again_after_start(
    server: ServiceEndpoint, store: PostgreSQLStore
) -> None:
    work = _Workload(store)
    await work.run_while(server.kill)

    assert work.write_errors
    assert work.read_errors
    slowest = max(seconds for seconds, _ in work.write_errors + work.read_errors)
    assert slowest < TIMEOUT + SLACK
    with pytest.raises(StoreUnavailableError):
        await store.get("w0-1")
    with pytest.raises(StoreUnavailableError):
        await store.save("while-down", 1)

    await asyncio.to_thread(server.start)
    await store.save("after-start", 1)
    assert await store.get("after-start") == 1
    keys = list(work.acknowledged)
    assert keys
    assert await store.get_many(keys) == [work.acknowledged[k] for k in keys]


async def test_after_a_clean_restart_the_first_calls_succeed(
    server: ServiceEndpoint, store: PostgreSQLStore
) -> None:
    await store.save_many({f"k{i}": i for i in range(20)})  # several pooled connections
    await asyncio.gather(*(store.get(f"k{i}") for i in range(20)))

    await asyncio.to_thread(server.restart)

    assert await store.save("after", 1)
    assert await asyncio.gather(*(store.get(f"k{i}") for i in range(20))) == list(range(20))


async def test_a_kill_inside_a_transaction_leaves_nothing_behind(
    server: ServiceEndpoint, store: PostgreSQLStore
) -> None:
    await store.save("a", "before")

    async def transfer() -> None:
        async with store.transaction() as tx:
            await tx.save("a", "during")
            await tx.save("b", "during")
            await asyncio.to_thread(server.kill)
            await tx.save("c", "during")

    with pytest.raises(StoreUnavailableError):
        await transfer()
    await asyncio.to_thread(server.start)
    assert await store.get_many(["a", "b", "c"]) == ["before", None, None]


async def test_a_kill_just_before_commit_leaves_nothing_behind(
    server: ServiceEndpoint, store: PostgreSQLStore
) -> None:
    async def transfer() -> None:
        async with store.transaction() as tx:
            await tx.save("a", "during")
            await tx.save("b", "during")
            await asyncio.to_thread(server.kill)

    with pytest.raises((StoreUnavailableError, UnknownOutcomeError)):
        await transfer()
    await asyncio.to_thread(server.start)
    assert await store.get_many(["a", "b"]) == [None, None]


async def test_a_hung_server_times_out_instead_of_hanging(
    server: ServiceEndpoint, store: PostgreSQLStore
) -> None:
    if not isinstance(server, LocalPostgresServer):
        pytest.skip("pausing needs a local server process")
    await store.save("k", 1)
    server.pause()
    try:
        started = time.monotonic()
        with pytest.raises(UnknownOutcomeError):  # sent on the pooled connection
            await store.save("k", 2)
        write_seconds = time.monotonic() - started
        started = time.monotonic()
        with pytest.raises(StoreTimeoutError):  # a new connection is never answered
            await store.get("k")
        read_seconds = time.monotonic() - started
    finally:
        server.resume()
    assert read_seconds < TIMEOUT + SLACK
    assert write_seconds < TIMEOUT + SLACK
    assert await store.get("k") in (1, 2)


async def test_an_outage_prints_no_reconnect_tracebacks(
    server: ServiceEndpoint, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    settings = PostgresSettings(
        url=server.url, timeout=TIMEOUT, min_pool_size=3, reap_interval=None
    )
    async with PostgresBackend(settings) as backend:
        assert backend.pool.get_size() == 3  # the floor is open from the start
        store = backend.namespace(f"f-{uuid.uuid4().hex[:12]}")
        await store.save("k", 1)
        caplog.set_level(logging.DEBUG)
        await asyncio.to_thread(server.kill)
        try:
            # Long enough for a background reconnect loop to try twice (after 1 s, 2 s).
            ends = time.monotonic() + 3.5
            while time.monotonic() < ends:
                with pytest.raises(StoreUnavailableError):
                    await store.get("k")
                await asyncio.sleep(0.2)
        finally:
            await asyncio.to_thread(server.start)
        assert await store.get("k") == 1
    noisy = [r for r in caplog.records if r.levelno >= logging.WARNING or r.exc_info]
    assert noisy == []
    assert "Traceback" not in capfd.readouterr().err
