"""Several nodes (replicated stores with their own clocks) over the same replicas."""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from polystore.backends.memory import MemoryBackend, MemorySettings
from polystore.protocol import DataStore
from polystore.replication import ReplicatedStore, VectorClock
from polystore.types import JSONValue

pytestmark = pytest.mark.asyncio

NAMES = ("r1", "r2", "r3")


class SkewedClock:
    """The wall clock of a node, ``offset`` seconds off."""

    def __init__(self, offset: float) -> None:
        self.offset = offset

    def __call__(self) -> float:
        return time.time() + self.offset


@pytest_asyncio.fixture
async def replicas() -> AsyncIterator[dict[str, DataStore]]:
    backends = [MemoryBackend(MemorySettings()) for _ in NAMES]
    namespace = f"t{uuid.uuid4().hex[:8]}"
    for backend in backends:
        await backend.open()
    yield {name: b.namespace(namespace) for name, b in zip(NAMES, backends, strict=True)}
    for backend in backends:
        await backend.aclose()


def _union(values: list[JSONValue]) -> JSONValue:
    merged: set[str] = set()
    for value in values:
        assert isinstance(value, list)
        merged.update(str(item) for item in value)
    return sorted(merged)


def _never(values: list[JSONValue]) -> JSONValue:
    raise AssertionError(f"no siblings expected, got {values}")


async def _raw_states(replicas: dict[str, DataStore], key: str) -> list[JSONValue]:
    return [await replica.get(key) for replica in replicas.values()]


async def _agree(replicas: dict[str, DataStore], key: str) -> bool:
    return len({str(state) for state in await _raw_states(replicas, key)}) == 1


async def test_a_correct_node_that_read_a_value_from_a_node_30s_ahead_wins_everywhere(
    replicas: dict[str, DataStore],
) -> None:
    ahead = ReplicatedStore(replicas, node_id="ahead", clock=SkewedClock(30.0))
    correct = ReplicatedStore(replicas, node_id="correct", clock=SkewedClock(0.0))
    await ahead.save("k", "from the future")
    assert await correct.get("k") == "from the future"

    await correct.save("k", "corrected")
    await correct.aclose()

    for node in (ahead, correct):
        assert await node.get("k") == "corrected"
    assert await _agree(replicas, "k")


async def test_concurrent_blind_writes_with_vector_clocks_are_both_kept_and_merged(
    replicas: dict[str, DataStore],
) -> None:
    a = ReplicatedStore(replicas, node_id="a", resolver=VectorClock(merge=_union))
    b = ReplicatedStore(replicas, node_id="b", resolver=VectorClock(merge=_union))
    await asyncio.gather(a.save("cart", ["apple"]), b.save("cart", ["bread"]))

    assert await a.get("cart") == ["apple", "bread"]
    await a.aclose()  # the merged value is written back, dominating both
    reader = ReplicatedStore(replicas, node_id="c", resolver=VectorClock(merge=_never))
    assert await reader.get("cart") == ["apple", "bread"]


async def test_a_write_after_a_read_supersedes_the_siblings_it_saw(
    replicas: dict[str, DataStore],
) -> None:
    a = ReplicatedStore(replicas, node_id="a", resolver=VectorClock(merge=_union))
    b = ReplicatedStore(replicas, node_id="b", resolver=VectorClock(merge=_union))
    await a.save("cart", ["apple"])
    await b.save("cart", ["bread"])
    assert await b.get("cart") == ["apple", "bread"]  # b's read gives it the context

    await b.save("cart", ["cheese"])
    await a.aclose()
    await b.aclose()

    reader = ReplicatedStore(replicas, node_id="c", resolver=VectorClock(merge=_never))
    assert await reader.get("cart") == ["cheese"]


async def test_an_explicit_context_from_get_entry_supersedes_what_that_read_saw(
    replicas: dict[str, DataStore],
) -> None:
    a = ReplicatedStore(replicas, node_id="a", resolver=VectorClock(merge=_union))
    b = ReplicatedStore(replicas, node_id="b", resolver=VectorClock(merge=_never))
    await a.save("cart", ["apple"])
    entry = await a.get_entry("cart")
    assert entry is not None

    await b.save("cart", ["pear"], context=entry.version)  # b never read the key itself

    reader = ReplicatedStore(replicas, node_id="c", resolver=VectorClock(merge=_never))
    assert await reader.get("cart") == ["pear"]


async def test_a_blind_write_without_context_is_kept_beside_the_earlier_value(
    replicas: dict[str, DataStore],
) -> None:
    a = ReplicatedStore(replicas, node_id="a", resolver=VectorClock(merge=_union))
    b = ReplicatedStore(replicas, node_id="b", resolver=VectorClock(merge=_union))
    await a.save("cart", ["apple"])
    await b.save("cart", ["pear"])  # b never read it: concurrent, not superseding
    assert await a.get("cart") == ["apple", "pear"]


async def test_two_partitioned_writers_on_ten_keys_converge_after_repair(
    replicas: dict[str, DataStore],
) -> None:
    # Each writer reaches only two replicas (a network partition), both reach r2.
    left = ReplicatedStore({n: replicas[n] for n in ("r1", "r2")}, node_id="left")
    right = ReplicatedStore({n: replicas[n] for n in ("r2", "r3")}, node_id="right")
    rng = random.Random(7)
    keys = [f"k{i}" for i in range(10)]

    async def writer(store: ReplicatedStore, tag: str) -> None:
        for number in range(50):
            key = rng.choice(keys)
            if rng.random() < 0.2:
                await store.delete(key)
            else:
                await store.save(key, f"{tag}{number}")
            await asyncio.sleep(0)

    await asyncio.gather(writer(left, "L"), writer(right, "R"))
    diverged = [key for key in keys if not await _agree(replicas, key)]
    assert diverged  # the partition left the replicas apart

    whole = ReplicatedStore(replicas, node_id="repairer")
    report = await whole.repair()

    assert report.repaired >= len(diverged)
    for key in keys:
        assert await _agree(replicas, key)


async def test_a_blind_write_from_a_correct_node_loses_to_an_earlier_one_from_ahead(
    replicas: dict[str, DataStore],
) -> None:
    # Last-write-wins orders by clock: without a read, the correct node cannot know
    # that its write comes later (docs/replication.md, "Clocks").
    ahead = ReplicatedStore(replicas, node_id="ahead", clock=SkewedClock(30.0))
    correct = ReplicatedStore(replicas, node_id="correct", clock=SkewedClock(0.0))
    await ahead.save("k", "from the future")
    await correct.save("k", "blind")
    assert await correct.get("k") == "from the future"


async def test_the_implicit_context_is_bounded_and_a_dropped_one_writes_blind(
    replicas: dict[str, DataStore],
) -> None:
    a = ReplicatedStore(replicas, node_id="a", resolver=VectorClock(merge=_union))
    b = ReplicatedStore(replicas, node_id="b", resolver=VectorClock(merge=_union), context_size=1)
    await a.save("x", ["apple"])
    await b.get("x")
    await b.get("y")  # pushes x's context out of b's one-key memory

    await b.save("x", ["pear"])

    assert len(b.contexts) == 1
    assert await a.get("x") == ["apple", "pear"]  # blind: kept beside, merged


async def test_a_context_that_is_not_a_vector_clock_version_is_refused(
    replicas: dict[str, DataStore],
) -> None:
    from polystore.errors import ValidationError

    store = ReplicatedStore(replicas, resolver=VectorClock(merge=_union))
    with pytest.raises(ValidationError, match="context"):
        await store.save("x", [1], context="0000000000000001-a")  # type: ignore[arg-type]


class CountingStore:
    """A replica that counts the reads a merge makes before writing."""

    def __init__(self, store: DataStore) -> None:
        self.store = store
        self.reads = 0

    def __getattr__(self, name: str) -> object:
        return getattr(self.store, name)

    async def get_entry(self, key: str) -> object:
        self.reads += 1
        return await self.store.get_entry(key)


async def test_a_second_write_by_the_same_store_takes_one_round_trip_per_replica(
    replicas: dict[str, DataStore],
) -> None:
    counted = {name: CountingStore(replica) for name, replica in replicas.items()}
    store = ReplicatedStore(counted, node_id="a")  # type: ignore[arg-type]
    await store.save("k", 1)
    await store.aclose()
    before = sum(c.reads for c in counted.values())

    await store.save("k", 2)
    await store.aclose()

    assert sum(c.reads for c in counted.values()) == before  # no read: the version was known
    assert await store.get("k") == 2


async def test_a_write_on_a_version_changed_since_reads_and_keeps_the_other_write(
    replicas: dict[str, DataStore],
) -> None:
    a = ReplicatedStore(replicas, node_id="a", resolver=VectorClock(merge=_union), write_quorum=3)
    b = ReplicatedStore(replicas, node_id="b", resolver=VectorClock(merge=_union), write_quorum=3)
    await a.save("cart", ["apple"])  # a remembers each replica's version
    await b.save("cart", ["bread"])  # b never read it: a sibling, versions change

    await a.save("cart", ["cheese"])  # supersedes a's own apple, not b's bread

    assert await b.get("cart") == ["bread", "cheese"]
