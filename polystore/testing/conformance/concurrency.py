"""Many tasks calling one store at once: each gets what its own call would have."""

from __future__ import annotations

import asyncio
import random

import pytest

from polystore.errors import AlreadyExistsError, ConflictError
from polystore.protocol import DataStore
from polystore.testing.conformance._support import requires
from polystore.testing.linearizability import Op, Recorder, linearizable
from polystore.types import Capabilities, Entry, JSONValue, Version

TASKS = 50


async def _mixed_worker(store: DataStore, recorder: Recorder, task: int, keys: list[str]) -> None:
    rng = random.Random(task)  # noqa: S311 - a reproducible workload, not a secret
    for step in range(4):
        key = rng.choice(keys)
        value: JSONValue = {"task": task, "step": step}
        roll = rng.random()
        if roll < 0.35:
            await recorder.call(Op("get", key, 0.0), store.get_entry(key))
        elif roll < 0.55:
            op = Op("save", key, 0.0, value=value)
            await recorder.call(op, store.save(key, value))
        elif roll < 0.6:
            await recorder.call(Op("delete", key, 0.0), store.delete(key))
        elif roll < 0.75:
            read = Op("get", key, 0.0)
            entry = await recorder.call(read, store.get_entry(key))
            if isinstance(entry, Entry):
                op = Op("cas", key, 0.0, value=value, if_version=entry.version)
                await recorder.call(op, store.save(key, value, if_version=entry.version))
        elif roll < 0.85:
            op = Op("create", key, 0.0, value=value)
            await recorder.call(op, store.save(key, value, if_absent=True))
        else:
            read = Op("get", key, 0.0)
            entry = await recorder.call(read, store.get_entry(key))
            if isinstance(entry, Entry):
                op = Op("cas_delete", key, 0.0, if_version=entry.version)
                await recorder.call(op, store.delete(key, if_version=entry.version))
            else:
                await recorder.call(Op("delete", key, 0.0), store.delete(key))


class ConcurrencyTests:
    """Part of :class:`~polystore.testing.StoreConformance`."""

    @pytest.mark.parametrize("seed", [0, 1, 2])
    async def test_mixed_calls_from_many_tasks_are_linearizable(
        self, store: DataStore, seed: int
    ) -> None:
        # A store offering compare-and-set promises each key's calls take effect one at
        # a time, in an order that respects real time: what this checks.
        requires(store, Capabilities.CAS)
        keys = [f"lin{seed}-{i}" for i in range(6)]
        recorder = Recorder()
        await asyncio.gather(
            *(_mixed_worker(store, recorder, seed * 1000 + t, keys) for t in range(TASKS))
        )
        assert len(recorder.ops) >= TASKS * 4
        assert linearizable(recorder.ops) == []

    async def test_concurrent_saves_each_get_their_own_version(self, store: DataStore) -> None:
        keys = [f"own{i}" for i in range(TASKS)]
        versions = await asyncio.gather(*(store.save(k, {"n": i}) for i, k in enumerate(keys)))
        assert len(set(versions)) == TASKS
        entries = await asyncio.gather(*(store.get_entry(k) for k in keys))
        for i, (entry, version) in enumerate(zip(entries, versions, strict=True)):
            assert entry is not None
            assert (entry.value, entry.version) == ({"n": i}, version)

    async def test_concurrent_reads_each_get_their_own_key(self, store: DataStore) -> None:
        keys = [f"read{i}" for i in range(TASKS - 6)]
        await store.save_many({k: i for i, k in enumerate(keys)})
        keys_asked = [*keys, "read-missing", *keys[:5]]  # TASKS calls, some keys twice
        values = await asyncio.gather(*(store.get(k) for k in keys_asked))
        present = await asyncio.gather(*(store.exists(k) for k in keys_asked))
        assert values == [*range(TASKS - 6), None, *range(5)]
        assert present == [True] * (TASKS - 6) + [False] + [True] * 5

    async def test_one_of_many_concurrent_compare_and_sets_wins(self, store: DataStore) -> None:
        requires(store, Capabilities.CAS)
        base = await store.save("race", 0)
        results = await asyncio.gather(
            *(store.save("race", i, if_version=base) for i in range(1, TASKS + 1)),
            return_exceptions=True,
        )
        winners = [(i + 1, r) for i, r in enumerate(results) if isinstance(r, str)]
        assert len(winners) == 1
        assert all(isinstance(r, ConflictError) for r in results if not isinstance(r, str))
        entry = await store.get_entry("race")
        assert entry is not None
        assert (entry.value, entry.version) == (winners[0][0], Version(winners[0][1]))

    async def test_one_of_many_concurrent_creates_wins(self, store: DataStore) -> None:
        requires(store, Capabilities.CAS)
        results = await asyncio.gather(
            *(store.save("first", i, if_absent=True) for i in range(TASKS)),
            return_exceptions=True,
        )
        winners = [i for i, r in enumerate(results) if isinstance(r, str)]
        losers = [r for r in results if not isinstance(r, str)]
        assert len(winners) == 1
        assert len(losers) == TASKS - 1
        assert all(isinstance(r, AlreadyExistsError) for r in losers)
        assert await store.get("first") == winners[0]

    async def test_each_task_reads_its_own_write_among_many(self, store: DataStore) -> None:
        async def write_then_read(i: int) -> object:
            await store.save(f"ryw{i % 7}-{i}", {"i": i})
            return await store.get(f"ryw{i % 7}-{i}")

        seen = await asyncio.gather(*(write_then_read(i) for i in range(TASKS)))
        assert seen == [{"i": i} for i in range(TASKS)]

    async def test_a_cancelled_caller_leaves_the_others_whole(self, store: DataStore) -> None:
        async def slow_start() -> None:
            await store.save("cancelled", "late")

        saves = [asyncio.ensure_future(store.save(f"kept{i}", i)) for i in range(20)]
        victim = asyncio.ensure_future(slow_start())
        await asyncio.sleep(0)
        victim.cancel()
        versions = await asyncio.gather(*saves)
        assert len(set(versions)) == 20
        assert await store.get_many([f"kept{i}" for i in range(20)]) == list(range(20))
        assert await store.get("cancelled") in (None, "late")
