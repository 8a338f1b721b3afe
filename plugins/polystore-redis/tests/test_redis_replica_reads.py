"""``read_from = "replica"``: reads on replicas, the primary when none answers, no CAS.

Runs on private servers: a primary with a ``--replicaof`` replica for ``replica_urls``,
and the Sentinel set (primary, replica, three Sentinels) for ``redis+sentinel://`` URLs.
Where a read went is told by the servers' own ``INFO commandstats`` counters.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator

import pydantic
import pytest
import redis
import redis.asyncio as aioredis
from polystore_redis import RedisBackend, RedisSettings

from polystore import (
    Capabilities,
    Polystore,
    RouteRequirementError,
    UnsupportedOperationError,
)
from polystore.testing import LocalRedisSentinelSet, LocalRedisServer

StartRedis = Callable[..., LocalRedisServer]

READS = ("get", "mget", "exists", "scan", "evalsha")
"""The commands a store's reads send (``evalsha``: the entry and batched-read scripts)."""


async def _read_calls(port: int) -> int:
    """Calls of the read commands a server has answered since its last ``RESETSTAT``."""
    async with aioredis.Redis(port=port) as raw:
        stats = await raw.info("commandstats")
    return sum(int(stats.get(f"cmdstat_{name}", {}).get("calls", 0)) for name in READS)


async def _reset_stats(*ports: int) -> None:
    for port in ports:
        async with aioredis.Redis(port=port) as raw:
            await raw.config_resetstat()


async def _replicated(primary_port: int) -> None:
    """Wait until the primary's replica has every write so far (``WAIT``)."""
    async with aioredis.Redis(port=primary_port) as raw:
        assert await raw.execute_command("WAIT", 1, 5000) >= 1


def _synced(replica_port: int) -> None:
    with redis.Redis(port=replica_port) as raw:
        deadline = time.monotonic() + 30
        while raw.info("replication").get("master_link_status") != "up":
            assert time.monotonic() < deadline, "the replica did not sync"
            time.sleep(0.05)


@pytest.fixture
def pair(
    private_redis: StartRedis,
) -> tuple[LocalRedisServer, LocalRedisServer]:
    primary = private_redis()
    replica = private_redis("--replicaof", "127.0.0.1", str(primary.port))
    _synced(replica.port)
    return primary, replica


@pytest.fixture
def sentinels() -> Iterator[LocalRedisSentinelSet]:
    servers = LocalRedisSentinelSet(name="sentinel-reads")
    try:
        servers.start()
        yield servers
    finally:
        servers.close()


def _settings(
    primary: LocalRedisServer, replica: LocalRedisServer, **extra: object
) -> RedisSettings:
    return RedisSettings.model_validate(
        {"url": primary.url, "replica_urls": [replica.url], "read_from": "replica", **extra}
    )


async def _read_everything(backend: RedisBackend, values: dict[str, int]) -> None:
    """Every kind of read, each checked against what was written."""
    store = backend.namespace("reads")
    for key, value in values.items():
        assert await store.get(key) == value
    entry = await store.get_entry("k0")
    assert entry is not None
    assert entry.value == 0
    assert await store.exists("k1")
    assert await store.get_many(list(values)) == list(values.values())
    assert sorted([key async for key in store.scan()]) == sorted(values)
    # Concurrent gets are coalesced into one script call: that goes to the replica too.
    results = await asyncio.gather(*(store.get(key) for key in values))
    assert results == list(values.values())


@pytest.mark.asyncio
async def test_written_values_are_read_from_the_replica_and_not_the_primary(
    pair: tuple[LocalRedisServer, LocalRedisServer],
) -> None:
    primary, replica = pair
    values = {f"k{i}": i for i in range(20)}
    async with RedisBackend(_settings(primary, replica)) as backend:
        await backend.namespace("reads").save_many(list(values.items()))
        await _replicated(primary.port)
        await _reset_stats(primary.port, replica.port)

        await _read_everything(backend, values)

        assert await _read_calls(replica.port) >= len(values) + 4
        assert await _read_calls(primary.port) == 0


async def _script_calls(port: int) -> int:
    async with aioredis.Redis(port=port) as raw:
        stats = await raw.info("commandstats")
    return int(stats.get("cmdstat_evalsha", {}).get("calls", 0))


@pytest.mark.asyncio
async def test_concurrent_reads_are_coalesced_into_batches_sent_to_the_replica(
    pair: tuple[LocalRedisServer, LocalRedisServer],
) -> None:
    primary, replica = pair
    values = {f"k{i}": i for i in range(64)}
    async with RedisBackend(_settings(primary, replica)) as backend:
        store = backend.namespace("reads")
        await store.save_many(list(values.items()))
        await _replicated(primary.port)
        await _reset_stats(primary.port, replica.port)
        before = store.coalesce_stats.batched_calls  # type: ignore[attr-defined]

        for _ in range(5):
            got = await asyncio.gather(
                *(store.get(key) for key in values),
                *(store.get_entry(key) for key in values),
            )
            assert [v if isinstance(v, int) else v.value for v in got] == [*values.values()] * 2

        batched = store.coalesce_stats.batched_calls - before  # type: ignore[attr-defined]
        assert batched >= 5 * len(values)  # most of the reads went in batches
        assert await _script_calls(replica.port) >= 5  # the batches' script, on the replica
        assert await _read_calls(primary.port) == 0


@pytest.mark.asyncio
async def test_a_scan_of_many_pages_and_a_get_many_of_many_chunks_stay_on_the_replica(
    pair: tuple[LocalRedisServer, LocalRedisServer],
) -> None:
    primary, replica = pair
    values = {f"k{i}": i for i in range(2500)}  # three MGET chunks of 1000
    async with RedisBackend(_settings(primary, replica)) as backend:
        store = backend.namespace("pages")
        await store.save_many(list(values.items()))
        await _replicated(primary.port)
        await _reset_stats(primary.port, replica.port)

        keys = [key async for key in store.scan(batch_size=100)]
        found = await store.get_many(list(values))

        assert sorted(keys) == sorted(values)
        assert found == list(values.values())
        assert await _read_calls(replica.port) >= 2500 // 100 + 3
        assert await _read_calls(primary.port) == 0


@pytest.mark.asyncio
async def test_reads_fall_back_to_the_primary_within_the_timeout_when_the_replica_is_killed(
    pair: tuple[LocalRedisServer, LocalRedisServer],
) -> None:
    primary, replica = pair
    values = {f"k{i}": i for i in range(20)}
    async with RedisBackend(_settings(primary, replica, timeout=1.0)) as backend:
        store = backend.namespace("reads")
        await store.save_many(list(values.items()))
        await _replicated(primary.port)
        assert await store.get("k0") == 0  # a pooled connection to the replica is open

        await asyncio.to_thread(replica.kill)
        await _reset_stats(primary.port)
        started = time.monotonic()
        await _read_everything(backend, values)
        took = time.monotonic() - started

        assert took < 1.0
        assert await _read_calls(primary.port) >= len(values) + 4


@pytest.mark.asyncio
async def test_a_read_waits_at_most_half_the_timeout_for_a_paused_replica(
    pair: tuple[LocalRedisServer, LocalRedisServer],
) -> None:
    primary, replica = pair
    async with RedisBackend(_settings(primary, replica, timeout=1.0)) as backend:
        store = backend.namespace("reads")
        await store.save("k", "v")
        await _replicated(primary.port)

        await asyncio.to_thread(replica.pause)
        try:
            started = time.monotonic()
            value = await store.get("k")
            took = time.monotonic() - started
        finally:
            await asyncio.to_thread(replica.resume)

        assert value == "v"
        assert took < 1.0


@pytest.mark.asyncio
async def test_writes_and_transactions_go_to_the_primary(
    pair: tuple[LocalRedisServer, LocalRedisServer],
) -> None:
    primary, replica = pair
    async with RedisBackend(_settings(primary, replica)) as backend:
        store = backend.namespace("writes")
        await store.save("a", 1)
        async with store.transaction() as tx:
            await tx.save("b", 2)
        await _replicated(primary.port)

        async with aioredis.Redis(port=primary.port) as raw:
            assert await raw.exists("polystore:writes:a", "polystore:writes:b") == 2
        assert await store.get_many(["a", "b"]) == [1, 2]


@pytest.mark.asyncio
async def test_a_store_reading_from_replicas_does_not_offer_compare_and_set(
    pair: tuple[LocalRedisServer, LocalRedisServer],
) -> None:
    primary, replica = pair
    async with RedisBackend(_settings(primary, replica)) as backend:
        store = backend.namespace("cas")
        version = await store.save("k", 1)

        assert Capabilities.CAS not in store.capabilities
        with pytest.raises(UnsupportedOperationError):
            await store.save("k", 2, if_version=version)


@pytest.mark.asyncio
async def test_a_route_requiring_cas_over_replica_reads_is_refused_at_start(
    pair: tuple[LocalRedisServer, LocalRedisServer],
) -> None:
    primary, replica = pair
    backend = {
        "plugin": "redis",
        "url": primary.url,
        "replica_urls": [replica.url],
        "read_from": "replica",
    }
    config = {
        "backends": {"cache": backend},
        "routes": {"counters": {"backend": "cache", "requires": ["cas"]}},
    }
    with pytest.raises(RouteRequirementError):
        async with Polystore.from_config(config):
            pass


@pytest.mark.asyncio
async def test_with_sentinel_reads_go_to_the_replica_it_names(
    sentinels: LocalRedisSentinelSet,
) -> None:
    values = {f"k{i}": i for i in range(20)}
    settings = RedisSettings(url=sentinels.url, read_from="replica")
    async with RedisBackend(settings) as backend:
        await backend.namespace("reads").save_many(list(values.items()))
        await _replicated(sentinels.primary.port)
        await _reset_stats(sentinels.primary.port, sentinels.replica.port)

        await _read_everything(backend, values)

        assert await _read_calls(sentinels.replica.port) >= len(values) + 4
        assert await _read_calls(sentinels.primary.port) == 0


@pytest.mark.asyncio
async def test_with_sentinel_reads_fall_back_to_the_primary_when_the_replica_is_killed(
    sentinels: LocalRedisSentinelSet,
) -> None:
    values = {f"k{i}": i for i in range(20)}
    settings = RedisSettings.model_validate(
        {"url": sentinels.url, "read_from": "replica", "timeout": 1.0}
    )
    async with RedisBackend(settings) as backend:
        await backend.namespace("reads").save_many(list(values.items()))
        await _replicated(sentinels.primary.port)
        assert await backend.namespace("reads").get("k0") == 0

        await asyncio.to_thread(sentinels.replica.kill)
        await _reset_stats(sentinels.primary.port)
        started = time.monotonic()
        await _read_everything(backend, values)
        took = time.monotonic() - started

        assert took < 1.0
        assert await _read_calls(sentinels.primary.port) >= len(values) + 4


def test_read_from_replica_needs_replicas() -> None:
    with pytest.raises(pydantic.ValidationError, match="replica_urls"):
        RedisSettings(read_from="replica")


def test_replica_urls_are_refused_with_a_cluster() -> None:
    with pytest.raises(pydantic.ValidationError, match="single-server"):
        RedisSettings(url="redis+cluster://127.0.0.1:7000", replica_urls=["redis://h:6379/0"])


def test_a_bad_replica_url_is_refused_without_its_password() -> None:
    with pytest.raises(pydantic.ValidationError) as info:
        RedisSettings(replica_urls=["http://:hunter2@h:6379/0"], read_from="replica")

    assert "replica_urls" in str(info.value)
    assert "hunter2" not in str(info.value)


def test_replica_passwords_stay_out_of_the_settings_and_backend_reprs() -> None:
    settings = RedisSettings(
        replica_urls=["redis://:hunter2@127.0.0.1:6380/0"], read_from="replica"
    )

    backend = RedisBackend(settings)

    assert "hunter2" not in repr(settings)
    assert "hunter2" not in repr(backend)
    assert "hunter2" not in str(settings.model_dump())
