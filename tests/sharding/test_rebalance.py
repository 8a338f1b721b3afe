"""Online rebalancing against a real Redis server: writers keep going, nothing is lost."""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from polystore_redis import RedisBackend, RedisSettings

from polystore.backends.sqlite import SqliteBackend, SqliteSettings
from polystore.errors import CrossShardError
from polystore.protocol import DataStore
from polystore.sharding import (
    HashShardStrategy,
    RangeShardStrategy,
    RebalanceReport,
    ShardedStore,
    TopologyRecord,
)
from polystore.testing.services import ServiceEndpoint
from polystore.types import JSONValue

pytestmark = pytest.mark.asyncio

KILL_PROGRAM = Path(__file__).with_name("rebalance_worker.py")


@pytest_asyncio.fixture
async def redis(redis_service: ServiceEndpoint) -> AsyncIterator[RedisBackend]:
    async with RedisBackend(RedisSettings(url=redis_service.url, timeout=10)) as backend:
        yield backend


def four_shards(redis: RedisBackend) -> dict[str, DataStore]:
    prefix = f"rb-{uuid.uuid4().hex[:8]}"
    return {sid: redis.namespace(f"{prefix}-{sid}") for sid in "abcd"}


async def assert_only_on_owner(store: ShardedStore, expected: dict[str, JSONValue]) -> None:
    for key, value in expected.items():
        held = await store.get_from_all_shards(key)
        owner = store.shard_for(key)
        assert held[owner] == value, key
        assert [sid for sid, v in held.items() if sid != owner and v is not None] == [], key


async def test_rebalance_under_eight_writers_keeps_every_last_acknowledged_value(
    redis: RedisBackend,
) -> None:
    shards = four_shards(redis)
    store = ShardedStore({k: shards[k] for k in "abc"})
    keys = [f"item:{i}" for i in range(2000)]
    await store.save_many({key: {"w": -1, "n": 0} for key in keys})
    expected: dict[str, JSONValue] = {key: {"w": -1, "n": 0} for key in keys}
    stop = asyncio.Event()

    async def writer(task: int) -> int:
        mine = keys[task::8]  # one writer per key: its last acknowledged write is known
        rng = random.Random(task)
        writes = 0
        while not stop.is_set():
            key = rng.choice(mine)
            if rng.random() < 0.1:
                await store.delete(key)
                expected[key] = None
            else:
                value: JSONValue = {"w": task, "n": writes}
                await store.save(key, value)
                expected[key] = value
            writes += 1
            await asyncio.sleep(0)
        return writes

    writers = [asyncio.create_task(writer(t)) for t in range(8)]
    await asyncio.sleep(0.2)
    await store.add_shard("d", shards["d"])
    report = await store.rebalance()
    await asyncio.sleep(0.1)
    stop.set()
    writes = await asyncio.gather(*writers)

    assert sum(writes) > 500
    assert 0 < report.moved < len(keys)
    assert set(report.moves) <= {"a->d", "b->d", "c->d"}
    assert not store.shard_map.migrating
    assert await store.get_many(keys) == [expected[k] for k in keys]
    await assert_only_on_owner(store, expected)


async def test_reads_fall_back_to_the_previous_owner_until_keys_move(
    redis: RedisBackend,
) -> None:
    shards = four_shards(redis)
    store = ShardedStore({k: shards[k] for k in "abc"})
    values = {f"k{i}": {"i": i, "tag": "t"} for i in range(400)}
    await store.save_many(values)
    await store.add_shard("d", shards["d"])
    assert store.shard_map.migrating
    moving = [k for k in values if store.shard_for(k) == "d"]
    assert moving
    assert await shards["d"].get_many(moving) == [None] * len(moving)

    assert await store.get_many(list(values)) == list(values.values())
    assert all([await store.exists(k) for k in moving])
    listed = [key async for key in store.scan(batch_size=50)]
    assert sorted(listed) == sorted(values)
    entry = await store.get_entry(moving[0])
    assert entry is not None
    await store.save(moving[0], {"i": -1}, if_version=entry.version)  # CAS across the move
    assert await store.delete(moving[1]) is True
    report = await store.rebalance()

    assert report.moved == len(moving) - 2  # one moved by the CAS write, one deleted
    assert await store.get(moving[0]) == {"i": -1}
    assert await store.get(moving[1]) is None
    assert await shards["a"].get(moving[1]) is None


async def test_remove_shard_empties_it_and_keeps_every_value_readable(
    redis: RedisBackend, tmp_path: Path
) -> None:
    shards = four_shards(redis)
    async with SqliteBackend(SqliteSettings(path=str(tmp_path / "s.db"))) as sqlite:
        shards["d"] = sqlite.namespace("removed")
        store = ShardedStore(shards)
        values = {f"k{i}": i for i in range(600)}
        await store.save_many(values)
        assert await shards["d"].get_many([k for k in values if store.shard_for(k) == "d"])

        report = await store.remove_shard("d")

        assert [key async for key in shards["d"].scan()] == []
        assert report.moved > 0
        assert set(store.shards) == {"a", "b", "c"}
        assert await store.get_many(list(values)) == list(values.values())


async def test_a_moved_entry_keeps_its_remaining_ttl(redis: RedisBackend) -> None:
    shards = four_shards(redis)
    store = ShardedStore({k: shards[k] for k in "abc"})
    keys = [f"t{i}" for i in range(40)]
    await store.save_many(dict.fromkeys(keys, 1), ttl=100)
    before = {k: (await store.get_entry(k)).expires_at for k in keys}  # type: ignore[union-attr]
    await asyncio.sleep(1.5)
    await store.add_shard("d", shards["d"])
    report = await store.rebalance()
    assert report.moved > 0
    for key in keys:
        entry = await store.get_entry(key)
        assert entry is not None
        assert entry.expires_at is not None
        assert before[key] is not None
        assert abs((entry.expires_at - before[key]).total_seconds()) < 0.5


async def test_a_dry_run_counts_moves_and_changes_nothing(redis: RedisBackend) -> None:
    shards = four_shards(redis)
    store = ShardedStore({k: shards[k] for k in "abc"})
    await store.save_many({f"k{i}": i for i in range(300)})
    await store.add_shard("d", shards["d"])
    seen: list[int] = []

    report = await store.rebalance(dry_run=True, progress=lambda r: seen.append(r.scanned))

    assert report.dry_run
    assert report.scanned == seen[-1] == 300
    assert report.moved == sum(1 for i in range(300) if store.shard_for(f"k{i}") == "d")
    assert [key async for key in shards["d"].scan()] == []
    assert store.shard_map.migrating


async def test_a_rebalance_killed_midway_completes_when_run_again(
    redis: RedisBackend, redis_service: ServiceEndpoint
) -> None:
    prefix = f"kill-{uuid.uuid4().hex[:8]}"
    shards = {sid: redis.namespace(f"{prefix}-{sid}") for sid in "abcd"}
    topology = TopologyRecord(redis.namespace(f"{prefix}-map"), refresh_interval=0.2)
    store = ShardedStore({k: shards[k] for k in "abc"}, topology=topology)
    values = {f"k{i}": {"i": i} for i in range(3000)}
    await store.save_many(values)
    env = {**os.environ, "PYTHONHASHSEED": "7"}
    worker = subprocess.Popen(  # noqa: ASYNC220 - killed by the test, never awaited
        [sys.executable, str(KILL_PROGRAM), redis_service.url, prefix],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert worker.stdout is not None
    moved = 0
    deadline = time.monotonic() + 60
    while moved < 100 and time.monotonic() < deadline:
        line = worker.stdout.readline()
        if not line:
            break
        moved = json.loads(line)["moved"]
    worker.send_signal(signal.SIGKILL)
    worker.wait()
    worker.stdout.close()
    assert 100 <= moved < 3000 // 4, "the worker was not killed in the middle of its work"

    resumed = ShardedStore(shards, HashShardStrategy(list("abcd")), topology=topology)
    await resumed.refresh()
    assert resumed.shard_map.migrating  # the map still says a move is under way
    assert await resumed.get_many(list(values)) == list(values.values())
    report: RebalanceReport = await resumed.rebalance()

    assert report.moved > 0
    assert not resumed.shard_map.migrating
    assert await resumed.get_many(list(values)) == list(values.values())
    await assert_only_on_owner(resumed, dict(values))
    again = await resumed.rebalance()
    assert again.moved == 0


async def test_a_cross_shard_transaction_on_real_servers_writes_nothing(
    redis: RedisBackend, tmp_path: Path
) -> None:
    async with SqliteBackend(SqliteSettings(path=str(tmp_path / "tx.db"))) as sqlite:
        shards: dict[str, DataStore] = {
            "redis": redis.namespace(f"tx-{uuid.uuid4().hex[:8]}"),
            "sqlite": sqlite.namespace("tx"),
        }
        store = ShardedStore(
            shards, RangeShardStrategy([(None, "m", "redis"), ("m", None, "sqlite")])
        )
        await store.save("a", "before")

        with pytest.raises(CrossShardError):
            await _write_across_shards(store)

        assert await shards["redis"].get_many(["a", "b", "z"]) == ["before", None, None]
        assert await shards["sqlite"].get_many(["a", "b", "z"]) == [None, None, None]


async def _write_across_shards(store: ShardedStore) -> None:
    async with store.transaction() as tx:
        await tx.save("a", "during")
        await tx.save("b", "during")
        await tx.save("z", "on the other shard")
