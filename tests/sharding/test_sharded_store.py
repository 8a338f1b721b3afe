"""ShardedStore behaviour beyond the conformance suite: routing, merging, transactions."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from polystore.backends.memory import MemoryBackend, MemorySettings
from polystore.backends.sqlite import SqliteBackend, SqliteSettings
from polystore.errors import (
    ConfigurationError,
    CrossShardError,
    UnsupportedOperationError,
    ValidationError,
)
from polystore.protocol import DataStore
from polystore.sharding import HashShardStrategy, RangeShardStrategy, ShardedStore
from polystore.types import Capabilities

pytestmark = pytest.mark.asyncio


@pytest_asyncio.fixture
async def shards(tmp_path: Path) -> AsyncIterator[dict[str, DataStore]]:
    memory = MemoryBackend(MemorySettings())
    sqlite = SqliteBackend(SqliteSettings(path=str(tmp_path / "db.sqlite"), synchronous="NORMAL"))
    async with memory, sqlite:
        ns = f"t-{uuid.uuid4().hex[:8]}"
        yield {
            "m1": memory.namespace(ns),
            "m2": memory.namespace(ns + "-2"),
            "sq": sqlite.namespace(ns),
        }


async def test_each_key_is_stored_only_on_its_shard(shards: dict[str, DataStore]) -> None:
    store = ShardedStore(shards)
    await store.save_many({f"k{i}": i for i in range(300)})
    for i in range(300):
        owner = store.shard_for(f"k{i}")
        held = await store.get_from_all_shards(f"k{i}")
        assert held == {sid: (i if sid == owner else None) for sid in shards}
    assert {store.shard_for(f"k{i}") for i in range(300)} == set(shards)


async def test_batches_over_several_shards_keep_input_order(shards: dict[str, DataStore]) -> None:
    store = ShardedStore(shards)
    keys = [f"key-{i}" for i in range(500)]
    versions = await store.save_many([(k, {"n": i}) for i, k in enumerate(keys)])
    entries = [await store.get_entry(k) for k in keys]
    assert [e.version for e in entries if e is not None] == versions
    reordered = [*reversed(keys), "missing"]
    assert await store.get_many(reordered) == [{"n": 499 - i} for i in range(500)] + [None]
    assert await store.delete_many([*keys[:100], "missing", keys[0]]) == 100


async def test_scan_lists_each_key_once_and_find_honours_the_limit(
    shards: dict[str, DataStore],
) -> None:
    store = ShardedStore(shards)
    await store.save_many({f"u{i:03d}": {"team": "x" if i % 2 else "y"} for i in range(200)})
    listed = [key async for key in store.scan(prefix="u", batch_size=7)]
    assert sorted(listed) == [f"u{i:03d}" for i in range(200)]
    found = await store.find({"team": "x"}, limit=10)
    assert [e.key for e in found] == [f"u{i:03d}" for i in range(1, 21, 2)]


async def test_a_key_of_another_shard_is_refused_and_never_staged(
    shards: dict[str, DataStore],
) -> None:
    store = ShardedStore(shards, RangeShardStrategy([(None, "m", "m1"), ("m", None, "m2")]))
    await store.save("a", "before")
    async with store.transaction() as tx:
        await tx.save("a", "during")
        await tx.save("b", "during")
        with pytest.raises(CrossShardError):
            await tx.save("z", "other shard")
    assert await store.get_many(["a", "b", "z"]) == ["during", "during", None]


async def test_a_cross_shard_transaction_is_refused_with_nothing_written(
    shards: dict[str, DataStore],
) -> None:
    store = ShardedStore(shards, RangeShardStrategy([(None, "m", "m1"), ("m", None, "m2")]))
    await store.save("a", "before")
    with pytest.raises(CrossShardError):
        await _cross_shard_transaction(store)
    assert await store.get_many(["a", "b", "z"]) == ["before", None, None]
    assert await shards["m1"].get_many(["a", "b", "z"]) == ["before", None, None]
    assert await shards["m2"].get_many(["a", "b", "z"]) == [None, None, None]


async def test_a_transaction_on_one_shard_commits(shards: dict[str, DataStore]) -> None:
    store = ShardedStore(shards)
    keys = [f"order:{{42}}:{i}" for i in range(5)]  # one hash tag: one shard
    async with store.transaction() as tx:
        for i, key in enumerate(keys):
            await tx.save(key, i)
    assert await store.get_many(keys) == [0, 1, 2, 3, 4]


async def test_capabilities_are_the_intersection(shards: dict[str, DataStore]) -> None:
    store = ShardedStore(shards)
    assert store.capabilities == shards["m1"].capabilities & shards["sq"].capabilities
    assert Capabilities.DURABLE not in store.capabilities  # memory is not durable
    assert Capabilities.DURABLE in shards["sq"].capabilities


async def test_a_key_outside_every_range_fails_before_any_io(
    shards: dict[str, DataStore],
) -> None:
    store = ShardedStore(shards, RangeShardStrategy([("a", "m", "m1")]))
    with pytest.raises(ValidationError):
        await store.save("zebra", 1)
    with pytest.raises(ValidationError):
        await store.save_many({"apple": 1, "zebra": 2})
    assert await shards["m1"].get("apple") is None


async def test_a_strategy_naming_an_unknown_shard_is_a_configuration_error(
    shards: dict[str, DataStore],
) -> None:
    with pytest.raises(ConfigurationError):
        ShardedStore(shards, HashShardStrategy(["m1", "nowhere"]))
    with pytest.raises(ConfigurationError):
        ShardedStore({})


async def test_reference_names_are_available(shards: dict[str, DataStore]) -> None:
    from polystore.sharding import ShardedDataStore

    store = ShardedDataStore(shards, HashShardStrategy())
    assert store.get_shard_id("k") == store.shard_for("k") == store.strategy.get_shard_id("k")


async def test_one_shard_hands_calls_straight_through(shards: dict[str, DataStore]) -> None:
    only = shards["sq"]
    store = ShardedStore({"sq": only})
    await store.save("k", 1, ttl=60)
    assert (await only.get_entry("k")) == (await store.get_entry("k"))
    assert await store.exists("k") is True
    assert [key async for key in store.scan()] == ["k"]
    assert store.get == only.get  # no frame of the sharded store in between
    await store.add_shard("m1", shards["m1"])
    assert store.get != only.get  # a move under way: reads fall back
    assert await store.get("k") == 1


async def test_transactions_are_refused_when_a_shard_lacks_them(
    shards: dict[str, DataStore],
) -> None:
    plain = _NoTransactions(shards["m1"])
    store = ShardedStore({"m1": plain, "sq": shards["sq"]})
    with pytest.raises(UnsupportedOperationError):
        store.transaction()


class _NoTransactions:
    """A store that declares everything its wrapped store does except transactions."""

    def __init__(self, store: DataStore) -> None:
        self._store = store
        self.name = store.name
        self.capabilities = store.capabilities & ~Capabilities.TRANSACTIONS

    def __getattr__(self, name: str) -> object:
        return getattr(self._store, name)


async def _cross_shard_transaction(store: ShardedStore) -> None:
    async with store.transaction() as tx:
        await tx.save("a", "during")
        await tx.save("b", "during")
        await tx.save("z", "other shard")
