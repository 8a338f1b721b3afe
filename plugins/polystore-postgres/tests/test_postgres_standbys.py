"""Reads on streaming standbys (replica_urls), against a private primary and standby.

Each test leaves both servers running. Fault controls run in a thread so the event loop
keeps going, as it would in an application while its database restarts.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import asyncpg  # type: ignore[import-untyped,unused-ignore]
import pytest
import pytest_asyncio
from polystore_postgres import PostgresBackend, PostgresSettings

from polystore import ConfigurationError, DataStore, Polystore, StoreUnavailableError
from polystore.testing import LocalPostgresReplicaSet

TIMEOUT = 2.0
SLACK = 1.0


@pytest.fixture(scope="module")
def servers() -> Iterator[LocalPostgresReplicaSet]:
    """A primary and standby of this module's own, so killing them disturbs no other test."""
    replica_set = LocalPostgresReplicaSet(name="standby-reads")
    try:
        replica_set.start()
        yield replica_set
    finally:
        replica_set.close()


@pytest.fixture(autouse=True)
def _both_running(servers: LocalPostgresReplicaSet) -> Iterator[None]:
    yield
    servers.start()


def _config(url: str, standbys: list[str], **options: Any) -> dict[str, Any]:
    backend = {
        "plugin": "postgres",
        "url": url,
        "replica_urls": standbys,
        "read_from": "replica",
        "timeout": TIMEOUT,
        "connect_timeout": TIMEOUT,
        "reap_interval": None,
        **options,
    }
    return {
        "backends": {"db": backend},
        "routes": {"items": {"backend": "db", "namespace": f"s{uuid.uuid4().hex[:10]}"}},
    }


@pytest_asyncio.fixture
async def app(servers: LocalPostgresReplicaSet) -> AsyncIterator[Polystore]:
    async with Polystore.from_config(_config(servers.url, [servers.standby_url])) as polystore:
        await polystore.route("items").save("warm-up", 0)  # the table exists on both
        await asyncio.to_thread(servers.wait_caught_up)
        yield polystore


async def _standby_reads(url: str) -> int:
    """Rows the standby has returned so far (its own statistics)."""
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("SELECT pg_stat_clear_snapshot()")
        value = await conn.fetchval(
            "SELECT tup_returned + tup_fetched FROM pg_stat_database WHERE datname = 'postgres'"
        )
        return int(value)
    finally:
        await conn.close()


@pytest.mark.asyncio
async def test_a_thousand_write_then_read_pairs_read_no_stale_value(app: Polystore) -> None:
    store = app.route("items")
    stale = 0

    for i in range(1000):
        await store.save(f"k{i % 50}", i)
        if await store.get(f"k{i % 50}") != i:
            stale += 1

    assert stale == 0


@pytest.mark.asyncio
async def test_reads_go_to_the_standby(app: Polystore, servers: LocalPostgresReplicaSet) -> None:
    store = app.route("items")
    await store.save("seen", {"v": 1})
    await asyncio.to_thread(servers.wait_caught_up)
    before = await _standby_reads(servers.standby_url)

    for _ in range(200):
        assert await store.get("seen") == {"v": 1}

    await asyncio.sleep(0.6)  # statistics reach pg_stat_database within 0.5 s
    assert await _standby_reads(servers.standby_url) - before >= 200


@pytest.mark.asyncio
async def test_with_the_standby_down_reads_go_to_the_primary(
    app: Polystore, servers: LocalPostgresReplicaSet
) -> None:
    store = app.route("items")
    await asyncio.to_thread(servers.standby.kill)

    await store.save("while-standby-down", {"state": "fresh"})

    started = time.monotonic()
    assert await store.get("while-standby-down") == {"state": "fresh"}
    assert [e.key for e in await store.find({"state": "fresh"})] == ["while-standby-down"]
    assert time.monotonic() - started < TIMEOUT


@pytest.mark.asyncio
async def test_with_the_primary_down_reads_work_and_writes_fail_fast_until_it_returns(
    app: Polystore, servers: LocalPostgresReplicaSet
) -> None:
    store = app.route("items")
    await store.save("before-crash", "kept")
    await asyncio.to_thread(servers.primary.kill)

    assert await store.get("before-crash") == "kept"
    started = time.monotonic()
    with pytest.raises(StoreUnavailableError):
        await store.save("during-crash", "refused")
    assert time.monotonic() - started < TIMEOUT + SLACK
    assert await store.get("before-crash") == "kept"
    assert [key async for key in store.scan(prefix="before-")] == ["before-crash"]

    await asyncio.to_thread(servers.primary.start)
    await _eventually_saves(store, "after-restart", "written")
    assert await store.get("after-restart") == "written"


async def _eventually_saves(store: DataStore, key: str, value: str, within: float = 15.0) -> None:
    deadline = time.monotonic() + within
    while True:
        try:
            await store.save(key, value)
            return
        except StoreUnavailableError:  # noqa: PERF203 - it sleeps between tries anyway
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)


@pytest.mark.asyncio
async def test_without_read_your_writes_reads_may_lag_but_still_use_the_standby(
    servers: LocalPostgresReplicaSet,
) -> None:
    settings = PostgresSettings(
        url=servers.url,
        replica_urls=[servers.standby_url],
        read_from="replica",
        read_your_writes=False,
        reap_interval=None,
    )
    async with PostgresBackend(settings) as backend:
        store = backend.namespace(f"r{uuid.uuid4().hex[:10]}")
        await store.save("k", 1)
        await asyncio.to_thread(servers.wait_caught_up)
        assert await store.get("k") == 1
        assert backend.standbys is not None
        assert backend.standbys.members[0].reads >= 1


@pytest.mark.asyncio
async def test_a_promoted_standby_takes_writes_through_a_multi_host_url() -> None:
    replica_set = LocalPostgresReplicaSet(name="standby-promote")
    try:
        await asyncio.to_thread(replica_set.start)
        config = _config(replica_set.multi_host_url, [replica_set.standby_url])
        async with Polystore.from_config(config) as app:
            store = app.route("items")
            await store.save("before", 1)
            await asyncio.to_thread(replica_set.wait_caught_up)
            await asyncio.to_thread(replica_set.primary.kill)
            await asyncio.to_thread(replica_set.standby.promote)

            await _eventually_saves(store, "after", "on the new primary")

            assert await store.get("before") == 1
            assert await store.get("after") == "on the new primary"
            on_new_primary = await asyncpg.connect(replica_set.standby_url)
            try:
                assert await on_new_primary.fetchval("SELECT pg_is_in_recovery()") is False
            finally:
                await on_new_primary.close()
    finally:
        await asyncio.to_thread(replica_set.close)


def test_read_from_replica_without_standbys_is_refused() -> None:
    with pytest.raises(ValueError, match="needs replica_urls"):
        PostgresSettings(url="postgresql://h/db", read_from="replica")


def test_a_malformed_standby_url_is_refused_without_its_password() -> None:
    with pytest.raises(ValueError, match="replica_urls") as caught:
        PostgresSettings(replica_urls=["mysql://u:hunter2@h:99999/db"])
    assert "hunter2" not in str(caught.value)


def test_standby_urls_are_redacted_in_the_settings_repr() -> None:
    settings = PostgresSettings(replica_urls=["postgresql://app:hunter2@standby/db"])
    assert "hunter2" not in repr(settings)
    assert "standby" in repr(settings)


@pytest.mark.asyncio
async def test_a_polystore_with_a_bad_standby_url_fails_with_a_configuration_error() -> None:
    config = _config("postgresql://postgres@127.0.0.1:1/postgres", ["postgresql://u:pw@h:0/x"])
    polystore = Polystore.from_config(config)
    with pytest.raises(ConfigurationError, match="replica_urls") as raised:
        await polystore.start()
    assert ":pw@" not in str(raised.value)


@pytest.mark.asyncio
async def test_a_frozen_standby_costs_at_most_the_timeout_and_reads_come_from_the_primary(
    app: Polystore, servers: LocalPostgresReplicaSet
) -> None:
    store = app.route("items")
    await store.save("while-frozen", 1)
    await asyncio.to_thread(servers.wait_caught_up)
    await asyncio.to_thread(servers.standby.pause)
    try:
        started = time.monotonic()
        value = await store.get("while-frozen")
        elapsed = time.monotonic() - started
    finally:
        await asyncio.to_thread(servers.standby.resume)

    assert value == 1
    assert elapsed < TIMEOUT + SLACK


async def _replay(standby_url: str, action: str) -> None:
    conn = await asyncpg.connect(standby_url)
    try:
        await conn.execute(f"SELECT pg_wal_replay_{action}()")
    finally:
        await conn.close()


@pytest.mark.asyncio
async def test_max_replica_lag_keeps_reads_off_a_standby_that_fell_behind(
    servers: LocalPostgresReplicaSet,
) -> None:
    def settings(**lag: float) -> PostgresSettings:
        return PostgresSettings(
            url=servers.url,
            replica_urls=[servers.standby_url],
            read_from="replica",
            read_your_writes=False,
            reap_interval=None,
            **lag,
        )

    namespace = f"lag{uuid.uuid4().hex[:10]}"
    async with (
        PostgresBackend(settings(max_replica_lag=0.5)) as bounded_backend,
        PostgresBackend(settings()) as unbounded_backend,
    ):
        bounded = bounded_backend.namespace(namespace)
        unbounded = unbounded_backend.namespace(namespace)
        await bounded.save("k", "old")
        await asyncio.to_thread(servers.wait_caught_up)
        await _replay(servers.standby_url, "pause")
        try:
            await bounded.save("k", "new")
            await asyncio.sleep(1.2)

            assert await unbounded.get("k") == "old"  # stale: what read_your_writes=False allows
            assert await bounded.get("k") == "new"  # the standby is too far behind
        finally:
            await _replay(servers.standby_url, "resume")
