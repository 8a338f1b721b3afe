"""Throughput workloads, written against :class:`Ops` (a few async callables) so that one
definition measures polystore (a store's own bound methods) and, in the repository's
``benchmarks/`` suite, raw drivers and other libraries. On ~1 KB JSON documents:
``save``, ``get``, ``get_concurrent`` / ``save_concurrent`` (32 tasks), ``save_batch`` /
``get_batch`` (100 per call, one op per document), ``cas`` (16 tasks incrementing one
counter with read / compare-and-set loops, one op per increment) and ``mixed``
(``sessions`` / ``profiles`` / ``transactions`` 60 / 30 / 10, 80 % reads).
:func:`run_store_benchmarks` measures a mapping of route name to store (what
``polystore bench`` runs for a configured deployment); :func:`format_table` prints the
results.
"""

from __future__ import annotations

import asyncio
import dataclasses
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
    "MIXED_WEIGHTS", "SESSION_TTL", "SINGLE_WORKLOADS", "BenchResult", "KeySpace", "Ops",
    "Sizes", "Workload", "format_table", "interleave", "make_document", "mixed_plan",
    "prepare_mixed", "run_mixed", "run_store_benchmarks", "store_ops",
]  # fmt: skip

SESSION_TTL = 1800.0
"""Seconds of expiry on every session write of the ``mixed`` workload."""
MIXED_WEIGHTS = {"sessions": 6, "profiles": 3, "transactions": 1}
"""Share of the ``mixed`` workload per route (other routes weigh 1)."""


@dataclass(frozen=True)
class Sizes:
    """How much work one round of each workload does."""

    ops: int = 1000
    concurrent_ops: int = 2000
    concurrency: int = 32
    batch: int = 100
    batches: int = 10
    cas_tasks: int = 16
    cas_increments: int = 10
    mixed_ops: int = 1000
    mixed_concurrency: int = 16
    keyspace: int = 1000

    @classmethod
    def smoke(cls) -> Sizes:
        """A few operations per workload: finishes in seconds."""
        return cls(ops=20, concurrent_ops=64, batches=1, cas_tasks=4, cas_increments=3,
                   mixed_ops=40, keyspace=100)  # fmt: skip

    def scaled(self, factor: float) -> Sizes:
        """The same workloads with ``factor`` times the operations, but never fewer than
        a run needs for a steady figure: 100 sequential calls, 10 per concurrent task,
        2 batches, 400 routed calls (a mixed run is dominated by its few slow writes)."""

        def times(n: int, least: int = 1) -> int:
            return max(least, round(n * factor))

        return dataclasses.replace(
            self, ops=times(self.ops, 100),
            concurrent_ops=times(self.concurrent_ops, 10 * self.concurrency),
            batches=times(self.batches, 2), cas_increments=times(self.cas_increments),
            mixed_ops=times(self.mixed_ops, 400),
        )  # fmt: skip


def make_document(index: int) -> dict[str, JSONValue]:
    """A deterministic JSON document of about 1 KB (a profile with a counter ``n``)."""
    return {
        "id": index, "name": f"user-{index:08d}", "email": f"user{index:08d}@example.com",
        "active": index % 2 == 0, "score": index * 0.25, "n": 0,
        "tags": ["alpha", "beta", "gamma", "delta", "epsilon"],
        "address": {"street": f"{index} Main Street", "city": "Springfield", "zip": "12345"},
        "history": [{"at": 1_700_000_000 + i, "event": "login", "ok": True} for i in range(8)],
        "bio": ("lorem ipsum dolor sit amet " * 20)[:424],
    }  # fmt: skip


@dataclass(frozen=True)
class Ops:
    """The calls a workload makes; bound methods where possible, so no extra frame.

    ``get``, ``save``, ``get_many`` and ``save_many`` (a ``{key: value}`` dict) as usual;
    ``increment(key)`` adds 1 to the document's ``n`` with a read / compare-and-set loop
    (None without CAS); ``delete_many(keys)`` removes what the workloads wrote.
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
    loaded: bool = field(default=False, init=False)

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
        size = self.size
        return {self.keys[(start + i) % size]: self.docs[(start + i) % size] for i in range(count)}

    async def preload(self, ops: Ops, batch: int = 100) -> None:
        """Store every document with ``save_many``, once (workloads rewrite the same ones)."""
        for start in range(0, 0 if self.loaded else self.size, batch):
            await ops.save_many(self.items(start, min(batch, self.size - start)))
        self.loaded = True


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


async def _save_concurrent(ops: Ops, sizes: Sizes, space: KeySpace) -> int:
    save, keys, docs, size, step = ops.save, space.keys, space.docs, space.size, sizes.concurrency

    async def worker(first: int) -> None:
        for i in range(first, sizes.concurrent_ops, step):
            await save(keys[i % size], docs[i % size])

    await asyncio.gather(*(worker(w) for w in range(step)))
    return sizes.concurrent_ops


async def _batch(ops: Ops, sizes: Sizes, space: KeySpace, *, write: bool) -> int:
    batches = [space.items(b * sizes.batch, sizes.batch) for b in range(sizes.batches)]
    for items in batches:
        await (ops.save_many(items) if write else ops.get_many(list(items)))
    return sizes.batch * sizes.batches


async def _cas(ops: Ops, sizes: Sizes, space: KeySpace) -> int:
    increment, key = ops.increment, space.cas_key
    if increment is None:
        raise PolystoreError("the cas workload needs Ops.increment")

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
    run: Callable[[Ops, Sizes, KeySpace], Awaitable[int]]
    setup: Callable[[Ops, Sizes, KeySpace], Awaitable[None]] | None = None
    needs_cas: bool = False

    async def prepare(self, ops: Ops, sizes: Sizes, space: KeySpace) -> None:
        """The untimed setup before a run (stored keys, a reset counter)."""
        if self.setup is not None:
            await self.setup(ops, sizes, space)


SINGLE_WORKLOADS: tuple[Workload, ...] = (
    Workload("save", _save),
    Workload("get", _get, _preload),
    Workload("get_concurrent", _get_concurrent, _preload),
    Workload("save_concurrent", _save_concurrent),
    Workload("save_batch", functools.partial(_batch, write=True)),
    Workload("get_batch", functools.partial(_batch, write=False), _preload),
    Workload("cas", _cas, _reset_counter, needs_cas=True),
)


@functools.lru_cache(maxsize=16)
def mixed_plan(routes: tuple[str, ...], count: int) -> tuple[tuple[str, bool, int], ...]:
    """The same ``(route, is_read, index)`` sequence for every library that runs ``mixed``."""
    rng = random.Random(7)  # noqa: S311 - a reproducible plan, not a secret
    chosen = rng.choices(routes, weights=[MIXED_WEIGHTS.get(r, 1) for r in routes], k=count)
    return tuple((route, rng.random() < 0.8, rng.randrange(1 << 30)) for route in chosen)


async def prepare_mixed(
    routes: Mapping[str, Ops], sizes: Sizes, spaces: Mapping[str, KeySpace]
) -> None:
    """Store the documents (once) and build the ``mixed`` plan, before timing starts."""
    for route, ops in routes.items():
        await spaces[route].preload(ops, sizes.batch)
    mixed_plan(tuple(routes), sizes.mixed_ops)


async def run_mixed(routes: Mapping[str, Ops], spaces: Mapping[str, KeySpace], sizes: Sizes) -> int:
    """Run the ``mixed`` plan over ``routes`` (keys preloaded); return the op count."""
    plan, step = mixed_plan(tuple(routes), sizes.mixed_ops), sizes.mixed_concurrency

    async def worker(first: int) -> None:
        for route, is_read, index in plan[first::step]:
            space = spaces[route]
            at = index % space.size
            if is_read:
                await routes[route].get(space.keys[at])
            else:
                await routes[route].save(space.keys[at], space.docs[at])

    await asyncio.gather(*(worker(w) for w in range(step)))
    return len(plan)


async def interleave(
    names: Sequence[str], prepare: Callable[[str, Sizes], Awaitable[None]],
    run: Callable[[str, Sizes], Awaitable[int]], sizes: Sizes, rounds: int,
    seconds: float | None = None,
) -> dict[str, list[float]]:  # fmt: skip
    """Ops/s by name of ``rounds`` measured rounds of one workload, after a warm-up round.

    The order rotates every round (A B C, B C A, ...), so a slow moment of the machine
    hits every target alike. With ``seconds``, the work is scaled after the warm-up so
    that the slowest target's run lasts about that long.
    """
    rates: dict[str, list[float]] = {name: [] for name in names}
    for index in range(rounds + 1):
        shift = index % max(len(names), 1)
        slowest = 0.0
        for name in [*names[shift:], *names[:shift]]:
            await prepare(name, sizes)
            gc.collect()
            started = time.perf_counter()
            count = await run(name, sizes)
            elapsed = time.perf_counter() - started
            slowest = max(slowest, elapsed)
            if index:
                rates[name].append(count / elapsed)
        if index == 0 and seconds is not None and slowest > 0:
            sizes = sizes.scaled(min(20.0, max(0.02, seconds / slowest)))
    return rates


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
    """The :class:`Ops` of a polystore store: its own bound methods (``ttl`` on saves)."""
    save: Callable[[str, Any], Awaitable[Any]] = store.save
    if ttl is not None:
        save = functools.partial(store.save, ttl=ttl)
    increment = None
    if Capabilities.CAS in store.capabilities:
        increment = functools.partial(_increment_store, store)
    return Ops(store.get, save, store.get_many, store.save_many, increment, store.delete_many)


@dataclass(frozen=True)
class BenchResult:
    """Ops/s of each measured round of one library (``"polystore"``, ``"raw"``, a peer) on
    one target (route or backend) and workload; no rounds when ``note`` says why."""

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
    stores: Mapping[str, DataStore],
    *,
    smoke: bool = False,
    rounds: int = 3,
    progress: Callable[[str], None] | None = None,
) -> list[BenchResult]:
    """Measure every workload on every store, then ``mixed`` across all of them.

    Only keys under a fresh ``polystore-bench-<random>-`` prefix are written, and deleted
    afterwards. Stores are interleaved round by round (see :func:`interleave`); full runs
    aim at half a second per run. A route named ``sessions`` saves with a ttl.

    Args:
        stores: Route name to store.
        smoke: A few operations per workload instead of thousands.
        rounds: Measured rounds after the warm-up.
        progress: Called with each workload's name once it is done (for a progress bar).

    Returns:
        One result per store and workload (``cas`` is n/a without CAS), then ``mixed``.
    """
    if not stores:
        return []
    sizes = Sizes.smoke() if smoke else Sizes()
    seconds = None if smoke else 0.5
    prefix = f"polystore-bench-{os.urandom(4).hex()}-"
    spaces = {name: KeySpace(prefix, sizes.keyspace) for name in stores}
    ops = {}
    for name, store in stores.items():
        has_ttl = Capabilities.TTL in store.capabilities
        ops[name] = store_ops(store, ttl=SESSION_TTL if name == "sessions" and has_ttl else None)
    results: list[BenchResult] = []
    try:
        for workload in SINGLE_WORKLOADS:
            rates = await interleave(
                [n for n in stores if ops[n].increment or not workload.needs_cas],
                lambda n, sz, w=workload: w.prepare(ops[n], sz, spaces[n]),  # type: ignore[misc]
                lambda n, sz, w=workload: w.run(ops[n], sz, spaces[n]),  # type: ignore[misc]
                sizes, rounds, seconds,
            )  # fmt: skip
            for name in stores:
                got = tuple(rates.get(name, ()))
                note = "" if got else "n/a: no compare-and-set"
                results.append(BenchResult(name, workload.name, "polystore", got, note))
            if progress is not None:
                progress(workload.name)
        mixed = await interleave(
            ["+".join(stores)], lambda n, sz: prepare_mixed(ops, sz, spaces),
            lambda n, sz: run_mixed(ops, spaces, sz), sizes, rounds, seconds,
        )  # fmt: skip
        results += [BenchResult(n, "mixed", "polystore", tuple(r)) for n, r in mixed.items()]
        if progress is not None:
            progress("mixed")
    finally:
        for name, store in stores.items():
            await store.delete_many(spaces[name].all_keys)
    return results


def _rate(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:,.1f}"


def format_table(results: Sequence[BenchResult]) -> str:
    """A plain-text table: target, workload, library, median ops/s and min-max over rounds."""
    rows: list[tuple[str, ...]] = [("target", "workload", "library", "ops/s (median)", "min-max")]
    for r in results:
        low, high = r.spread
        figures = (_rate(r.median), f"{_rate(low)}-{_rate(high)}") if r.rounds else (r.note, "")
        rows.append((r.target, r.workload, r.library, *figures))
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    rows.insert(1, tuple("-" * w for w in widths))
    cells = [[c.rjust(w) if i >= 3 else c.ljust(w) for i, (c, w) in
              enumerate(zip(row, widths, strict=True))] for row in rows]  # fmt: skip
    return "\n".join("  ".join(row).rstrip() for row in cells)
