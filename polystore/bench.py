"""Throughput workloads over :class:`~polystore.protocol.DataStore` objects.

The workloads are written against :class:`Ops`, a handful of plain async callables, so the
same definitions measure polystore (bound methods of a store, no wrapper in between) and,
in the repository's ``benchmarks/`` suite, the raw drivers and other libraries.

Every workload works on ~1 KB JSON documents (:func:`make_document`):

=================  ===============================================================
``save``           sequential saves
``get``            sequential gets of stored keys
``get_concurrent`` gets from 32 concurrent tasks
``save_batch``     ``save_many`` of 100 documents (one op = one document)
``get_batch``      ``get_many`` of 100 keys (one op = one document)
``cas``            16 tasks incrementing one counter with read / compare-and-set
                   loops (one op = one successful increment)
``mixed``          sessions / profiles / transactions routes, 60 / 30 / 10, 80 % gets
=================  ===============================================================

:func:`run_store_benchmarks` measures a mapping of route name to store (what
``polystore bench`` does for a configured deployment); :func:`format_table` prints results.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import os
import random
import statistics
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from polystore.errors import ConflictError, PolystoreError
from polystore.protocol import DataStore
from polystore.types import Capabilities, JSONValue

__all__ = [
    "MIXED_WEIGHTS",
    "SESSION_TTL",
    "SINGLE_WORKLOADS",
    "BenchResult",
    "KeySpace",
    "Ops",
    "Sizes",
    "Workload",
    "format_table",
    "make_document",
    "measure",
    "mixed_plan",
    "run_mixed",
    "run_store_benchmarks",
    "store_ops",
]

DOCUMENT_BYTES = 1024
SESSION_TTL = 1800.0
"""Seconds of expiry on every session write of the ``mixed`` workload."""
MIXED_WEIGHTS = {"sessions": 6, "profiles": 3, "transactions": 1}
"""Share of the ``mixed`` workload per route (other routes weigh 1)."""
_READ_SHARE = 0.8


@dataclass(frozen=True)
class Sizes:
    """How much work one round of each workload does."""

    ops: int = 2000
    concurrent_ops: int = 4000
    concurrency: int = 32
    batch: int = 100
    batches: int = 20
    cas_tasks: int = 16
    cas_increments: int = 20
    mixed_ops: int = 2000
    mixed_concurrency: int = 16
    keyspace: int = 2000

    @classmethod
    def smoke(cls) -> Sizes:
        """A few operations per workload: finishes in seconds."""
        return cls(
            ops=20, concurrent_ops=64, batches=1, cas_tasks=4, cas_increments=3,
            mixed_ops=40, keyspace=100,
        )  # fmt: skip


def make_document(index: int) -> dict[str, JSONValue]:
    """A deterministic JSON document of about 1 KB (a user profile with a counter ``n``)."""
    doc: dict[str, JSONValue] = {
        "id": index,
        "name": f"user-{index:08d}",
        "email": f"user{index:08d}@example.com",
        "active": index % 2 == 0,
        "score": index * 0.25,
        "n": 0,
        "tags": ["alpha", "beta", "gamma", "delta", "epsilon"],
        "address": {"street": f"{index} Main Street", "city": "Springfield", "zip": "12345"},
        "history": [{"at": 1_700_000_000 + i, "event": "login", "ok": True} for i in range(8)],
    }
    filler = DOCUMENT_BYTES - 600
    doc["bio"] = ("lorem ipsum dolor sit amet " * 40)[: max(filler, 0)]
    return doc


@dataclass(frozen=True)
class Ops:
    """The calls a workload makes. Use bound methods where possible: no extra frame.

    Attributes:
        get: ``await get(key)`` returns the decoded value or ``None``.
        save: ``await save(key, value)`` stores a value.
        get_many: ``await get_many(keys)`` returns values in order.
        save_many: ``await save_many({key: value})`` stores a batch.
        increment: ``await increment(key)`` adds 1 to the ``n`` field of the document
            with a read / compare-and-set loop; None when the library has no CAS.
        delete_many: ``await delete_many(keys)`` removes what the workloads wrote.
    """

    get: Callable[[str], Awaitable[Any]]
    save: Callable[[str, Any], Awaitable[Any]]
    get_many: Callable[[list[str]], Awaitable[Sequence[Any]]]
    save_many: Callable[[dict[str, Any]], Awaitable[Any]]
    increment: Callable[[str], Awaitable[Any]] | None = None
    delete_many: Callable[[list[str]], Awaitable[Any]] | None = None


@dataclass
class KeySpace:
    """The keys and documents one target works on (built before timing starts)."""

    prefix: str
    size: int
    keys: list[str] = field(init=False)
    docs: list[dict[str, JSONValue]] = field(init=False)

    def __post_init__(self) -> None:
        self.keys = [f"{self.prefix}{i:06d}" for i in range(self.size)]
        self.docs = [make_document(i) for i in range(self.size)]

    @property
    def cas_key(self) -> str:
        """The one key the ``cas`` workload contends on."""
        return f"{self.prefix}cas"

    @property
    def all_keys(self) -> list[str]:
        """Every key a workload may write."""
        return [*self.keys, self.cas_key]

    def items(self, start: int, count: int) -> dict[str, Any]:
        """``count`` key/document pairs from ``start``, wrapping around the key space."""
        return {
            self.keys[(start + i) % self.size]: self.docs[(start + i) % self.size]
            for i in range(count)
        }

    async def preload(self, ops: Ops, batch: int = 100) -> None:
        """Store every document of the key space with ``save_many``."""
        for start in range(0, self.size, batch):
            await ops.save_many(self.items(start, min(batch, self.size - start)))


# -- workloads ---------------------------------------------------------------------------


async def _noop(ops: Ops, sizes: Sizes, space: KeySpace) -> None:
    return None


async def _preload(ops: Ops, sizes: Sizes, space: KeySpace) -> None:
    await space.preload(ops, sizes.batch)


async def _reset_counter(ops: Ops, sizes: Sizes, space: KeySpace) -> None:
    await ops.save(space.cas_key, make_document(0))


async def _save(ops: Ops, sizes: Sizes, space: KeySpace) -> int:
    save, keys, docs, size = ops.save, space.keys, space.docs, space.size
    for i in range(sizes.ops):
        await save(keys[i % size], docs[i % size])
    return sizes.ops


async def _get(ops: Ops, sizes: Sizes, space: KeySpace) -> int:
    get, keys, size = ops.get, space.keys, space.size
    for i in range(sizes.ops):
        if await get(keys[i % size]) is None:
            raise PolystoreError(f"benchmark key {keys[i % size]!r} is missing")
    return sizes.ops


async def _get_concurrent(ops: Ops, sizes: Sizes, space: KeySpace) -> int:
    get, keys, size, step = ops.get, space.keys, space.size, sizes.concurrency

    async def worker(first: int) -> None:
        for i in range(first, sizes.concurrent_ops, step):
            await get(keys[i % size])

    await asyncio.gather(*(worker(w) for w in range(step)))
    return sizes.concurrent_ops


async def _save_batch(ops: Ops, sizes: Sizes, space: KeySpace) -> int:
    batches = [space.items(b * sizes.batch, sizes.batch) for b in range(sizes.batches)]
    for items in batches:
        await ops.save_many(items)
    return sizes.batch * sizes.batches


async def _get_batch(ops: Ops, sizes: Sizes, space: KeySpace) -> int:
    batches = [list(space.items(b * sizes.batch, sizes.batch)) for b in range(sizes.batches)]
    for keys in batches:
        await ops.get_many(keys)
    return sizes.batch * sizes.batches


async def _cas(ops: Ops, sizes: Sizes, space: KeySpace) -> int:
    increment, key = ops.increment, space.cas_key
    if increment is None:
        raise PolystoreError("cas workload needs Ops.increment")

    async def worker() -> None:
        for _ in range(sizes.cas_increments):
            await increment(key)

    await asyncio.gather(*(worker() for _ in range(sizes.cas_tasks)))
    total = sizes.cas_tasks * sizes.cas_increments
    final = await ops.get(key)
    if final is None or final["n"] != total:
        raise PolystoreError(f"cas lost updates: counter is {final and final['n']}, not {total}")
    return total


@dataclass(frozen=True)
class Workload:
    """A named workload: untimed ``prepare``, then timed ``run`` returning its op count."""

    name: str
    prepare: Callable[[Ops, Sizes, KeySpace], Awaitable[None]]
    run: Callable[[Ops, Sizes, KeySpace], Awaitable[int]]
    needs_cas: bool = False


SINGLE_WORKLOADS: tuple[Workload, ...] = (
    Workload("save", _noop, _save),
    Workload("get", _preload, _get),
    Workload("get_concurrent", _preload, _get_concurrent),
    Workload("save_batch", _noop, _save_batch),
    Workload("get_batch", _preload, _get_batch),
    Workload("cas", _reset_counter, _cas, needs_cas=True),
)


def mixed_plan(routes: Sequence[str], count: int, seed: int = 7) -> list[tuple[str, bool, int]]:
    """The same ``(route, is_read, index)`` sequence for every library that runs ``mixed``."""
    rng = random.Random(seed)  # noqa: S311 - a reproducible plan, not a secret
    weights = [MIXED_WEIGHTS.get(route, 1) for route in routes]
    chosen = rng.choices(list(routes), weights=weights, k=count)
    return [(route, rng.random() < _READ_SHARE, rng.randrange(1 << 30)) for route in chosen]


async def run_mixed(
    routes: Mapping[str, Ops],
    spaces: Mapping[str, KeySpace],
    plan: Sequence[tuple[str, bool, int]],
    concurrency: int,
) -> int:
    """Run ``plan`` over ``routes`` from ``concurrency`` tasks; return the op count."""

    async def worker(first: int) -> None:
        for route, is_read, index in plan[first::concurrency]:
            space = spaces[route]
            key = space.keys[index % space.size]
            if is_read:
                await routes[route].get(key)
            else:
                await routes[route].save(key, space.docs[index % space.size])

    await asyncio.gather(*(worker(w) for w in range(concurrency)))
    return len(plan)


async def measure(run: Callable[[], Awaitable[int]]) -> float:
    """Time ``run()`` once and return operations per second."""
    gc.collect()
    started = time.perf_counter()
    count = await run()
    return count / (time.perf_counter() - started)


# -- polystore targets ---------------------------------------------------------------------


async def _increment_store(store: DataStore, key: str) -> None:
    while True:
        entry = await store.get_entry(key)
        if entry is None or not isinstance(entry.value, dict):
            raise PolystoreError(f"benchmark counter {key!r} is missing")
        value = dict(entry.value)
        value["n"] = value["n"] + 1  # type: ignore[operator]
        try:
            await store.save(key, value, if_version=entry.version)
        except ConflictError:
            continue
        return


def store_ops(store: DataStore, *, ttl: float | None = None) -> Ops:
    """The :class:`Ops` of a polystore store: its own bound methods.

    Args:
        store: The store to measure.
        ttl: Expiry for every save (sessions), or None.
    """
    save: Callable[[str, Any], Awaitable[Any]] = store.save
    if ttl is not None:
        save = functools.partial(store.save, ttl=ttl)
    increment = None
    if Capabilities.CAS in store.capabilities:
        increment = functools.partial(_increment_store, store)
    return Ops(store.get, save, store.get_many, store.save_many, increment, store.delete_many)


@dataclass(frozen=True)
class BenchResult:
    """Throughput of one library on one target and workload, per round.

    Attributes:
        target: Route or backend name.
        workload: Workload name.
        library: ``"polystore"``, ``"raw"`` or a peer library.
        rounds: Operations per second of each measured round; empty when ``note`` says why.
        note: Why there is no figure (``"n/a: no CAS"``), or empty.
    """

    target: str
    workload: str
    library: str
    rounds: tuple[float, ...]
    note: str = ""

    @property
    def median(self) -> float:
        """Median operations per second over the rounds (0.0 without rounds)."""
        return statistics.median(self.rounds) if self.rounds else 0.0

    @property
    def spread(self) -> tuple[float, float]:
        """Lowest and highest round."""
        return (min(self.rounds), max(self.rounds)) if self.rounds else (0.0, 0.0)


async def run_store_benchmarks(
    stores: Mapping[str, DataStore], *, smoke: bool = False, rounds: int = 3
) -> list[BenchResult]:
    """Measure every workload on every store, plus ``mixed`` across all of them.

    Writes only keys under a fresh ``polystore-bench-<random>-`` prefix and deletes them
    afterwards. One warm-up pass precedes the measured rounds; within a round the
    workloads and stores are interleaved.

    Args:
        stores: Route (or any) name to store.
        smoke: A few operations per workload instead of thousands.
        rounds: Measured rounds.

    Returns:
        One result per store and workload (``cas`` is ``n/a`` without the CAS
        capability), and one ``mixed`` result when there are stores.
    """
    sizes = Sizes.smoke() if smoke else Sizes()
    prefix = f"polystore-bench-{os.urandom(4).hex()}-"
    spaces = {name: KeySpace(prefix, sizes.keyspace) for name in stores}
    ops = {
        name: store_ops(
            store,
            ttl=SESSION_TTL
            if name == "sessions" and Capabilities.TTL in store.capabilities
            else None,
        )
        for name, store in stores.items()
    }
    figures: dict[tuple[str, str], list[float]] = {}
    plan = mixed_plan(list(stores), sizes.mixed_ops)
    try:
        for round_index in range(rounds + 1):  # round 0 is the warm-up
            for workload in SINGLE_WORKLOADS:
                for name in stores:
                    target = ops[name]
                    if workload.needs_cas and target.increment is None:
                        continue
                    await workload.prepare(target, sizes, spaces[name])
                    rate = await measure(
                        functools.partial(workload.run, target, sizes, spaces[name])
                    )
                    if round_index:
                        figures.setdefault((name, workload.name), []).append(rate)
            if stores:
                for name in stores:
                    await spaces[name].preload(ops[name], sizes.batch)
                rate = await measure(
                    functools.partial(run_mixed, ops, spaces, plan, sizes.mixed_concurrency)
                )
                if round_index:
                    figures.setdefault(("+".join(stores), "mixed"), []).append(rate)
    finally:
        for name, store in stores.items():
            await store.delete_many(spaces[name].all_keys)
    results = []
    for name in stores:
        for workload in SINGLE_WORKLOADS:
            got = figures.get((name, workload.name))
            note = "" if got else "n/a: no CAS"
            results.append(BenchResult(name, workload.name, "polystore", tuple(got or ()), note))
    if stores:
        mixed_name = "+".join(stores)
        results.append(
            BenchResult(mixed_name, "mixed", "polystore", tuple(figures[(mixed_name, "mixed")]))
        )
    return results


def _rate(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:,.1f}"


def format_table(results: Sequence[BenchResult]) -> str:
    """A plain-text table: target, workload, library, median ops/s and min-max over rounds."""
    header = ("target", "workload", "library", "ops/s (median)", "min-max")
    rows = [header]
    for r in results:
        if r.rounds:
            low, high = r.spread
            rows.append(
                (r.target, r.workload, r.library, _rate(r.median), f"{_rate(low)}-{_rate(high)}")
            )
        else:
            rows.append((r.target, r.workload, r.library, r.note or "n/a", ""))
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = []
    for index, row in enumerate(rows):
        cells = [
            cell.rjust(widths[i]) if i >= 3 else cell.ljust(widths[i]) for i, cell in enumerate(row)
        ]
        lines.append("  ".join(cells).rstrip())
        if index == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)
