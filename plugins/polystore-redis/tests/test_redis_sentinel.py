"""Redis Sentinel: ``redis+sentinel://`` URLs, and a failover followed without a restart.

Runs on a private primary, replica and three Sentinels (``LocalRedisSentinelSet``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest
from polystore_redis import RedisBackend, RedisSettings

from polystore import Capabilities, Polystore, StoreUnavailableError, UnknownOutcomeError
from polystore.testing import LocalRedisSentinelSet

FAILOVER_BOUND = 30.0  # down-after 1 s, election and promotion: a few seconds here


@pytest.fixture
def sentinels() -> Iterator[LocalRedisSentinelSet]:
    servers = LocalRedisSentinelSet(name="sentinel-failover")
    try:
        servers.start()
        yield servers
    finally:
        servers.close()


@pytest.mark.asyncio
async def test_a_failover_is_followed_and_writes_acknowledged_by_the_replica_survive_it(
    sentinels: LocalRedisSentinelSet,
) -> None:
    acked = {"plugin": "redis", "url": sentinels.url, "timeout": 1.0, "wait_replicas": 1}
    plain = {"plugin": "redis", "url": sentinels.url, "timeout": 1.0}
    config = {
        "backends": {"acked": acked, "cache": plain},
        "routes": {
            "ledger": {"backend": "acked", "namespace": "s"},
            "sessions": {"backend": "cache", "namespace": "s"},
        },
    }
    async with Polystore.from_config(config) as app:
        store = app.route("sessions")
        acknowledged = {f"k{i}": i for i in range(200)}
        # Acknowledged only once the replica holds them (WAIT), one by one and in a batch.
        for key, value in list(acknowledged.items())[:100]:
            await app.route("ledger").save(key, value)
        await app.route("ledger").save_many(list(acknowledged.items())[100:])

        await asyncio.to_thread(sentinels.primary.kill)
        killed = time.monotonic()
        failures: list[BaseException] = []
        while True:
            try:
                await store.save("after-failover", "written")
                break
            except (StoreUnavailableError, UnknownOutcomeError) as exc:
                failures.append(exc)
                assert time.monotonic() - killed < FAILOVER_BOUND
                await asyncio.sleep(0.2)
        took = time.monotonic() - killed

        assert failures  # writes failed, typed, while there was no primary
        assert took < FAILOVER_BOUND
        assert await asyncio.to_thread(sentinels.primary_port) == sentinels.replica.port
        assert await store.get("after-failover") == "written"
        assert await store.get_many(list(acknowledged)) == list(acknowledged.values())


@pytest.mark.asyncio
async def test_without_the_replica_a_write_is_reported_unconfirmed_within_the_timeout(
    sentinels: LocalRedisSentinelSet,
) -> None:
    settings = RedisSettings(url=sentinels.url, timeout=0.5, wait_replicas=1)
    async with RedisBackend(settings) as backend:
        store = backend.namespace("acked")
        await store.save("before", 1)
        await asyncio.to_thread(sentinels.replica.pause)
        try:
            started = time.monotonic()
            with pytest.raises(UnknownOutcomeError, match="0 of 1 replicas"):
                await store.save("unconfirmed", 2)
            elapsed = time.monotonic() - started
        finally:
            await asyncio.to_thread(sentinels.replica.resume)

        assert elapsed < 0.5 + 1.0
        assert Capabilities.TRANSACTIONS not in store.capabilities
        assert await store.get("unconfirmed") == 2  # applied on the primary all the same


def test_wait_replicas_is_refused_on_a_cluster() -> None:
    with pytest.raises(ValueError, match="wait_replicas"):
        RedisSettings(url="redis+cluster://h:7000", wait_replicas=1)


def test_a_sentinel_url_names_the_sentinels_and_the_service() -> None:
    from polystore_redis.url import SentinelTarget, sentinel_target

    target = sentinel_target("redis+sentinel://:s3cret@h1:26379,h2/primary-a/2")

    assert target == SentinelTarget((("h1", 26379), ("h2", 26379)), "primary-a", 2, None, "s3cret")


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("redis+sentinel://h1:26379", "service name"),
        ("redis+sentinel://h1:99999/svc", "port"),
        ("redis+sentinel://h1/svc/zero", "database must be a number"),
        ("redis+sentinel://h1/svc?ssl=true", "no query options"),
    ],
)
def test_a_malformed_sentinel_url_is_refused_without_its_password(url: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem) as raised:
        RedisSettings(url=url.replace("://", "://:pw-secret@"))
    assert "pw-secret" not in str(raised.value)


def test_a_sentinel_url_is_redacted_in_reprs() -> None:
    settings = RedisSettings(url="redis+sentinel://:pw-secret@h1:26379,h2:26379/svc/0")
    assert "pw-secret" not in repr(settings)
    assert settings.is_sentinel
