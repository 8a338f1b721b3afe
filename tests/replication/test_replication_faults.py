"""Replicas on three private Redis servers: one killed, frozen, restarted and repaired."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack

import pytest
import pytest_asyncio
from polystore_redis import RedisBackend, RedisSettings

from polystore.errors import QuorumError, QuorumUnknownOutcomeError, StoreUnavailableError
from polystore.protocol import DataStore
from polystore.replication import ReplicatedStore
from polystore.replication.envelope import decode
from polystore.testing import LocalRedisServer
from polystore.testing.fixtures import skip_allowed
from polystore.testing.services import ServiceUnavailable

pytestmark = pytest.mark.asyncio

TIMEOUT = 0.5
# A quorum call may take up to one replica timeout; allow slack for a loaded machine.
CALL_BOUND = TIMEOUT + 0.4
NAMES = ("r1", "r2", "r3")


@pytest.fixture
def servers(request: pytest.FixtureRequest) -> Iterator[list[LocalRedisServer]]:
    started: list[LocalRedisServer] = []
    try:
        for name in NAMES:
            server = LocalRedisServer(name=f"redis-{name}")
            started.append(server)
            server.start()
    except ServiceUnavailable as exc:
        for server in started:
            server.close()
        if skip_allowed(request.config):
            pytest.skip(str(exc))
        raise
    yield started
    for server in started:
        server.resume()
        server.close()


@pytest_asyncio.fixture
async def replicas(servers: list[LocalRedisServer]) -> AsyncIterator[dict[str, DataStore]]:
    async with AsyncExitStack() as stack:
        stores: dict[str, DataStore] = {}
        for name, server in zip(NAMES, servers, strict=True):
            settings = RedisSettings(url=server.url, timeout=TIMEOUT)
            backend = await stack.enter_async_context(RedisBackend(settings))
            stores[name] = backend.namespace("carts")
        yield stores


async def _timed(call: object) -> tuple[object, float]:
    started = time.monotonic()
    result = await call  # type: ignore[misc]
    return result, time.monotonic() - started


async def test_one_replica_killed_w2_r2_calls_succeed_within_the_timeout(
    servers: list[LocalRedisServer], replicas: dict[str, DataStore]
) -> None:
    store = ReplicatedStore(replicas, write_quorum=2, read_quorum=2)
    await store.save("k", "before")
    servers[2].kill()
    for number in range(5):
        _, took_save = await _timed(store.save("k", number))
        value, took_get = await _timed(store.get("k"))
        assert value == number
        assert took_save <= CALL_BOUND
        assert took_get <= CALL_BOUND
    await store.aclose()


async def test_w3_with_a_killed_replica_raises_quorum_error_within_the_timeout(
    servers: list[LocalRedisServer], replicas: dict[str, DataStore]
) -> None:
    store = ReplicatedStore(replicas, write_quorum=3, read_quorum=1)
    servers[0].kill()
    started = time.monotonic()
    with pytest.raises(QuorumError) as info:
        await store.save("k", 1)
    assert time.monotonic() - started <= CALL_BOUND
    assert isinstance(info.value, QuorumUnknownOutcomeError)  # two replicas took it
    assert info.value.failed == ("r1",)
    assert info.value.acknowledged == 2
    await store.aclose()


async def test_a_frozen_replica_does_not_slow_quorum_calls(
    servers: list[LocalRedisServer], replicas: dict[str, DataStore]
) -> None:
    store = ReplicatedStore(replicas, write_quorum=2, read_quorum=2)
    await store.save("k", 0)
    servers[1].pause()
    longest = 0.0
    for number in range(1, 11):
        _, took_save = await _timed(store.save("k", number))
        value, took_get = await _timed(store.get("k"))
        assert value == number
        longest = max(longest, took_save, took_get)
    assert longest <= CALL_BOUND
    servers[1].resume()
    await store.aclose()


async def test_repair_brings_a_restarted_replica_back_deletes_included(
    servers: list[LocalRedisServer], replicas: dict[str, DataStore]
) -> None:
    store = ReplicatedStore(replicas, tombstone_grace=3600)
    await store.save_many({f"old{i}": i for i in range(20)})
    await store.aclose()  # every replica has the first keys
    servers[2].kill()
    await store.save_many({f"new{i}": i for i in range(30)})
    await store.delete_many([f"old{i}" for i in range(10)])
    await store.save("old10", "changed")
    await store.aclose()  # writes to the dead replica end (left for repair)
    await asyncio.to_thread(servers[2].start)

    report = await store.repair()

    assert report.done
    assert report.repaired == 30 + 10 + 1
    raw = {name: await _raw(replica) for name, replica in replicas.items()}
    assert raw["r1"] == raw["r2"] == raw["r3"]
    for i in range(10):
        assert decode(raw["r3"][f"old{i}"])[-1].deleted  # the tombstone reached it
        assert await store.get(f"old{i}") is None
    assert await store.get("old10") == "changed"
    assert [await store.get(f"new{i}") for i in range(30)] == list(range(30))
    again = await store.repair()
    assert (again.scanned, again.repaired) == (report.scanned, 0)
    await store.aclose()


async def test_repair_reaps_tombstones_past_the_grace_period_without_resurrection(
    servers: list[LocalRedisServer], replicas: dict[str, DataStore]
) -> None:
    store = ReplicatedStore(replicas, tombstone_grace=0)
    await store.save_many({"gone": 1, "kept": 2})
    servers[0].kill()
    await store.delete("gone")
    await store.aclose()
    await asyncio.to_thread(servers[0].start)

    first = await store.repair()  # copies the tombstone to r1
    second = await store.repair()  # every replica holds it: reaped

    assert (first.repaired, second.reaped) == (1, 1)
    for replica in replicas.values():
        assert await replica.get("gone") is None
        assert await replica.exists("kept")
    assert await store.get("gone") is None
    await store.aclose()


async def test_repair_needs_every_replica_and_names_the_missing_one(
    servers: list[LocalRedisServer], replicas: dict[str, DataStore]
) -> None:
    store = ReplicatedStore(replicas)
    await store.save("k", 1)
    servers[1].kill()
    with pytest.raises(StoreUnavailableError, match="r2"):
        await store.repair()
    await store.aclose()


async def _raw(replica: DataStore) -> dict[str, object]:
    keys = [key async for key in replica.scan()]
    values = await replica.get_many(keys)
    return dict(zip(keys, values, strict=True))
