"""Run the libraries side by side: one section per backend, plus the routed ``mixed`` section.

Within a section each workload gets one warm-up run per library, then ``rounds`` rounds
with the libraries interleaved (A B C, B C A, C A B, ...): a slow moment of the machine
hits every library alike, and the per-round ratios compare like with like. Full runs
scale each workload after the warm-up so that the slowest library's run lasts about
``seconds``.
"""

from __future__ import annotations

import functools
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.counters import Counter, count_commands, open_counter, server_version
from benchmarks.libraries import OPENERS, POLYSTORE, RAW, libraries_for
from benchmarks.peers import AIOCACHE, PYKV, UnavailableError
from benchmarks.servers import Servers
from polystore.bench import (
    SESSION_TTL,
    SINGLE_WORKLOADS,
    BenchResult,
    KeySpace,
    Ops,
    Sizes,
    Workload,
    interleave,
    prepare_mixed,
    run_mixed,
)

BACKENDS = ("sqlite", "redis", "postgres", "mongodb")
MIXED = "mixed"
MIXED_ROUTES = {"sessions": "redis", "profiles": "mongodb", "transactions": "postgres"}
BATCH_WORKLOADS = ("save_batch", "get_batch")
Log = Callable[[str], None]
Active = dict[str, tuple[Ops, KeySpace]]


@dataclass(frozen=True)
class Run:
    """What every section shares."""

    servers: Servers
    workdir: Path
    sizes: Sizes
    rounds: int
    seconds: float | None
    log: Log


@dataclass
class Library:
    """One library in a section: its ops (None when it cannot run) and key space."""

    name: str
    ops: Ops | None
    space: KeySpace
    note: str = ""
    routes: dict[str, Ops] = field(default_factory=dict)
    spaces: dict[str, KeySpace] = field(default_factory=dict)


@dataclass
class Section:
    """What one backend (or ``mixed``) produced."""

    backend: str
    status: str = ""
    where: str = ""
    results: list[BenchResult] = field(default_factory=list)
    counters: dict[str, dict[str, dict[str, int] | None]] = field(default_factory=dict)
    cpu: dict[str, dict[str, float]] = field(default_factory=dict)
    """Median client CPU time per op in microseconds, by workload and library."""


async def _open_library(
    stack: AsyncExitStack, library: str, server: str, location: str, run: Run, ttl: float | None
) -> Library:
    space = KeySpace("doc:", run.sizes.keyspace)
    if server == "sqlite":  # one database file per library
        location = str(Path(location).with_name(f"{Path(location).stem}_{library}.db"))
    collection = "bench_" + library.replace("-", "_")
    try:
        ops = await OPENERS[library](stack, server, location, collection=collection, ttl=ttl)
    except UnavailableError as exc:
        return Library(library, None, space, str(exc))
    return Library(library, ops, space)


async def _clean(ops: Ops | None, space: KeySpace) -> None:
    if ops is not None and ops.delete_many is not None:
        keys = space.all_keys
        for start in range(0, len(keys), 500):
            await ops.delete_many(keys[start : start + 500])


async def _run_workloads(section: Section, libraries: Sequence[Library], run: Run) -> None:
    target = section.backend
    for workload in SINGLE_WORKLOADS:
        cpu: dict[str, list[float]] = {}
        active: Active = {}
        for lib in libraries:
            if lib.ops is not None and (not workload.needs_cas or lib.ops.increment):
                active[lib.name] = (lib.ops, lib.space)

        async def prepare(
            name: str, sizes: Sizes, workload: Workload = workload, active: Active = active
        ) -> None:
            ops, space = active[name]
            await workload.prepare(ops, sizes, space)

        async def measured(
            name: str,
            sizes: Sizes,
            workload: Workload = workload,
            active: Active = active,
            cpu: dict[str, list[float]] = cpu,
        ) -> int:
            ops, space = active[name]
            started = time.process_time()
            count = await workload.run(ops, sizes, space)
            cpu.setdefault(name, []).append((time.process_time() - started) / count * 1e6)
            return count

        rates = await interleave(
            list(active), prepare, measured, run.sizes, run.rounds, run.seconds
        )
        # The first figure of each library is its warm-up run.
        section.cpu[workload.name] = {n: statistics.median(t[1:] or t) for n, t in cpu.items()}
        for lib in libraries:
            got = tuple(rates.get(lib.name, ()))
            note = "" if got else (lib.note or "n/a: no compare-and-set")
            section.results.append(BenchResult(target, workload.name, lib.name, got, note))
        run.log(f"  {target} {workload.name}: done")


async def _batch_counters(
    counter: Counter, libraries: Sequence[Library], sizes: Sizes
) -> dict[str, dict[str, dict[str, int] | None]]:
    found: dict[str, dict[str, dict[str, int] | None]] = {name: {} for name in BATCH_WORKLOADS}
    for lib in libraries:
        if lib.ops is None:
            continue
        items = lib.space.items(0, sizes.batch)
        await lib.ops.save_many(items)  # the same statements once first: caches are warm
        await lib.ops.get_many(list(items))
        save = functools.partial(lib.ops.save_many, items)
        found["save_batch"][lib.name] = await count_commands(counter, save)
        get = functools.partial(lib.ops.get_many, list(items))
        found["get_batch"][lib.name] = await count_commands(counter, get)
    return found


async def run_backend(backend: str, run: Run) -> Section:
    """Benchmark every library on one backend."""
    section = Section(backend)
    if backend == "sqlite":
        location = str(run.workdir / "bench.db")
        section.where = "embedded file, synchronous=FULL, WAL"
    else:
        url = run.servers.url(backend)
        if url is None:
            section.status = f"no server: {run.servers.problems.get(backend, 'unavailable')}"
            return section
        location = url
        provider = run.servers.providers.get(backend, "?")
        section.where = f"{provider} server, {await server_version(backend, location)}"
    async with AsyncExitStack() as stack:
        libraries = [
            await _open_library(stack, name, backend, location, run, None)
            for name in libraries_for(backend)
        ]
        if libraries[0].ops is None:
            section.status = libraries[0].note
            return section
        run.log(f"{backend}: {', '.join(lib.name for lib in libraries if lib.ops)}")
        await _run_workloads(section, libraries, run)
        counter = None if backend == "sqlite" else await open_counter(backend, location)
        if counter is not None:
            try:
                section.counters = await _batch_counters(counter, libraries, run.sizes)
            finally:
                await counter.close()
        for lib in libraries:
            await _clean(lib.ops, lib.space)
    return section


async def _place_routes(
    stack: AsyncExitStack, libraries: list[Library], run: Run, allowed: Sequence[str]
) -> dict[str, str]:
    """Open every library on every route; a route without polystore's plugin uses SQLite."""
    placement = {}
    for route, server in MIXED_ROUTES.items():
        url = run.servers.url(server) if server in allowed else None
        ttl = SESSION_TTL if route == "sessions" else None
        probe = (
            None if url is None else await _open_library(stack, POLYSTORE, server, url, run, ttl)
        )
        if url is None or probe is None or probe.ops is None:
            server, url, probe = "sqlite", str(run.workdir / f"mixed_{route}.db"), None
        placement[route] = server
        for lib in libraries:
            opened = probe if lib.name == POLYSTORE and probe is not None else None
            opened = opened or await _open_library(stack, lib.name, server, url, run, ttl)
            if opened.ops is None:
                lib.note = lib.note or opened.note
            else:
                lib.routes[route] = opened.ops
                lib.spaces[route] = KeySpace(f"{route}:", run.sizes.keyspace)
    return placement


async def run_mixed_section(run: Run, allowed: Sequence[str]) -> Section:
    """The routed workload: sessions on Redis (with ttl), profiles on MongoDB, transactions
    on PostgreSQL; a route whose server is not in ``allowed``, or is missing, uses SQLite."""
    section = Section(MIXED)
    async with AsyncExitStack() as stack:
        names = (POLYSTORE, RAW, PYKV, AIOCACHE)
        libraries = [Library(name, None, KeySpace("doc:", 1)) for name in names]
        placement = await _place_routes(stack, libraries, run, allowed)
        section.where = ", ".join(f"{route}: {server}" for route, server in placement.items())
        active = {lib.name: lib for lib in libraries if len(lib.routes) == len(MIXED_ROUTES)}

        async def prepare(name: str, sizes: Sizes) -> None:
            await prepare_mixed(active[name].routes, sizes, active[name].spaces)

        async def measured(name: str, sizes: Sizes) -> int:
            return await run_mixed(active[name].routes, active[name].spaces, sizes)

        rates = await interleave(
            list(active), prepare, measured, run.sizes, run.rounds, run.seconds
        )
        for lib in active.values():
            for route, ops in lib.routes.items():
                await _clean(ops, lib.spaces[route])
        for lib in libraries:
            got = tuple(rates.get(lib.name, ()))
            note = "" if got else (lib.note or "n/a: no store for every route")
            section.results.append(BenchResult(MIXED, MIXED, lib.name, got, note))
        run.log("  mixed: done")
    return section


async def run_suite(
    backends: Sequence[str],
    servers: Servers,
    *,
    smoke: bool = False,
    rounds: int = 11,
    seconds: float = 0.4,
    mixed: bool = True,
    log: Log = print,
) -> list[Section]:
    """Run the sections for ``backends`` (and ``mixed``); servers come from ``servers``.

    Args:
        backends: Any of ``sqlite``, ``redis``, ``postgres``, ``mongodb``.
        servers: Where the server URLs come from.
        smoke: A few operations per workload, no scaling.
        rounds: Measured rounds after the warm-up.
        seconds: Aimed duration of the slowest library's run of a workload.
        mixed: Also run the routed ``mixed`` section, on the servers of ``backends`` (of
            every backend when ``backends`` is empty).
        log: Progress messages.
    """
    sizes = Sizes.smoke() if smoke else Sizes()
    with tempfile.TemporaryDirectory(prefix="polystore-bench-") as tmp:
        run = Run(servers, Path(tmp), sizes, rounds, None if smoke else seconds, log)
        sections = [await run_backend(backend, run) for backend in backends]
        if mixed:
            sections.append(await run_mixed_section(run, backends or BACKENDS))
    return sections
