"""Redis Sentinel: ``redis+sentinel://`` URLs, and a failover followed without a restart.

Runs on a private primary, replica and three Sentinels (``LocalRedisSentinelSet``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest
from polystore_redis import RedisSettings

from polystore import Polystore, StoreUnavailableError, UnknownOutcomeError
from polystore.testing import LocalRedisSentinelSet
from polystore.testing._servers import redis_command

FAILOVER_BOUND = 30.0  # down-after 1 s, election and promotion: a few seconds here


@pytest.fixture
def sentinels() -> Iterator[LocalRedisSentinelSet]:
    servers = LocalRedisSentinelSet(name="sentinel-failover")
    try:
        servers.start()
        yield servers
    finally:
        servers.close()


def _replicated(servers: LocalRedisSentinelSet) -> bool:
    def offset(port: int) -> int:
        info = redis_command(port, "INFO", "replication")
        for line in info.splitlines():
            if line.startswith(("master_repl_offset:", "slave_repl_offset:")):
                return int(line.split(":")[1])
        return -1

    return offset(servers.primary.port) == offset(servers.replica.port)


@pytest.mark.asyncio
async def test_a_failover_is_followed_and_acknowledged_writes_survive_it(
    sentinels: LocalRedisSentinelSet,
) -> None:
    config = {
        "backends": {"cache": {"plugin": "redis", "url": sentinels.url, "timeout": 1.0}},
        "routes": {"sessions": {"backend": "cache"}},
    }
    async with Polystore.from_config(config) as app:
        store = app.route("sessions")
        acknowledged = {f"k{i}": i for i in range(200)}
        for key, value in acknowledged.items():
            await store.save(key, value)
        deadline = time.monotonic() + 10
        while not _replicated(sentinels):
            assert time.monotonic() < deadline, "the replica did not catch up"
            await asyncio.sleep(0.05)

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
