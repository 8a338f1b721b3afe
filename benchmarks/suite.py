"""Run the libraries side by side: one section per backend, plus the routed ``mixed`` section.

Within a section every workload is run once per library as a warm-up, then ``rounds``
times with the libraries interleaved (A B C, B C A, C A B, ...), so a slow moment of the
machine hits every library alike and the per-round ratios compare like with like.
"""

from __future__ import annotations

import functools
import tempfile
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
    measure,
    mixed_plan,
    run_mixed,
)

BACKENDS = ("sqlite", "redis", "postgres", "mongodb")
MIXED = "mixed"
MIXED_ROUTES = {"sessions": "redis", "profiles": "mongodb", "transactions": "postgres"}
BATCH_WORKLOADS = ("save_batch", "get_batch")
Log = Callable[[str], None]


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


def _collection(library: str) -> str:
    return "bench_" + library.replace("-", "_")


def _sqlite_path(workdir: Path, name: str) -> str:
    return str(workdir / f"{name}.db")


async def _open_library(
    stack: AsyncExitStack, library: str, server: str, location: str, sizes: Sizes, ttl: float | None
) -> Library:
    space = KeySpace("doc:", sizes.keyspace)
    opener = OPENERS[library]
    if server == "sqlite":
        location = str(Path(location).with_name(f"{Path(location).stem}_{library}.db"))
    try:
        ops = await opener(stack, server, location, collection=_collection(library), ttl=ttl)
    except UnavailableError as exc:
        return Library(library, None, space, str(exc))
    return Library(library, ops, space)


async def _interleave(
    target: str, libraries: Sequence[Library], sizes: Sizes, rounds: int, log: Log
) -> list[BenchResult]:
    results: list[BenchResult] = []
    for workload in SINGLE_WORKLOADS:
        active = [
            lib for lib in libraries
            if lib.ops is not None and (not workload.needs_cas or lib.ops.increment is not None)
        ]  # fmt: skip
        figures: dict[str, list[float]] = {lib.name: [] for lib in active}
        for round_index in range(rounds + 1):  # round 0 is the warm-up
            shift = round_index % max(len(active), 1)
            for lib in active[shift:] + active[:shift]:
                assert lib.ops is not None
                await workload.prepare(lib.ops, sizes, lib.space)
                rate = await measure(functools.partial(workload.run, lib.ops, sizes, lib.space))
                if round_index:
                    figures[lib.name].append(rate)
        for lib in libraries:
            if lib.name in figures:
                results.append(
                    BenchResult(target, workload.name, lib.name, tuple(figures[lib.name]))
                )
            else:
                note = lib.note or "n/a: no compare-and-set"
                results.append(BenchResult(target, workload.name, lib.name, (), note))
        log(f"  {target} {workload.name}: done")
    return results


async def _batch_counters(
    counter: Counter, libraries: Sequence[Library], sizes: Sizes
) -> dict[str, dict[str, dict[str, int] | None]]:
    found: dict[str, dict[str, dict[str, int] | None]] = {name: {} for name in BATCH_WORKLOADS}
    for lib in libraries:
        if lib.ops is None:
            continue
        ops, space = lib.ops, lib.space
        items = space.items(0, sizes.batch)
        found["save_batch"][lib.name] = await count_commands(
            counter, functools.partial(ops.save_many, items)
        )
        found["get_batch"][lib.name] = await count_commands(
            counter, functools.partial(ops.get_many, list(items))
        )
    return found


async def run_backend(
    backend: str, servers: Servers, workdir: Path, sizes: Sizes, rounds: int, log: Log
) -> Section:
    """Benchmark every library on one backend."""
    section = Section(backend)
    if backend == "sqlite":
        location = _sqlite_path(workdir, "bench")
        section.where = "embedded file, synchronous=FULL, WAL"
    else:
        url = servers.url(backend)
        if url is None:
            section.status = f"no server: {servers.problems.get(backend, 'unavailable')}"
            return section
        location = url
        version = await server_version(backend, location)
        section.where = f"{servers.providers.get(backend, '?')} server {version}"
    async with AsyncExitStack() as stack:
        libraries = [
            await _open_library(stack, name, backend, location, sizes, None)
            for name in libraries_for(backend)
        ]
        if libraries[0].ops is None:
            section.status = libraries[0].note
            return section
        log(f"{backend}: {', '.join(lib.name for lib in libraries if lib.ops)}")
        section.results = await _interleave(backend, libraries, sizes, rounds, log)
        counter = None if backend == "sqlite" else await open_counter(backend, location)
        if counter is not None:
            try:
                section.counters = await _batch_counters(counter, libraries, sizes)
            finally:
                await counter.close()
        for lib in libraries:
            await _clean(lib.ops, lib.space)
    return section


async def _clean(ops: Ops | None, space: KeySpace) -> None:
    if ops is not None and ops.delete_many is not None:
        keys = space.all_keys
        for start in range(0, len(keys), 500):
            await ops.delete_many(keys[start : start + 500])


async def run_mixed_section(
    servers: Servers, workdir: Path, sizes: Sizes, rounds: int, log: Log, allowed: Sequence[str]
) -> Section:
    """The routed workload: sessions on Redis (with ttl), profiles on MongoDB,
    transactions on PostgreSQL; a route whose server is not among ``allowed`` or whose
    server or plugin is missing uses SQLite."""
    section = Section(MIXED)
    placement: dict[str, tuple[str, str]] = {}
    async with AsyncExitStack() as stack:
        libraries = [
            Library(name, None, KeySpace("doc:", 1)) for name in (POLYSTORE, RAW, PYKV, AIOCACHE)
        ]
        for route, server in MIXED_ROUTES.items():
            url = servers.url(server) if server in allowed else None
            ttl = SESSION_TTL if route == "sessions" else None
            probe = None
            if url is not None:
                probe = await _open_library(stack, POLYSTORE, server, url, sizes, ttl)
            location = url
            if location is None or probe is None or probe.ops is None:
                server, location = "sqlite", _sqlite_path(workdir, f"mixed_{route}")
            placement[route] = (server, location)
            for lib in libraries:
                if lib.name == POLYSTORE and probe is not None and probe.ops is not None:
                    opened = probe
                else:
                    opened = await _open_library(stack, lib.name, server, location, sizes, ttl)
                if opened.ops is None:
                    lib.note = lib.note or opened.note
                else:
                    lib.routes[route] = opened.ops
                    lib.spaces[route] = KeySpace(f"{route}:", sizes.keyspace)
        section.where = ", ".join(f"{route}: {server}" for route, (server, _) in placement.items())
        active = [lib for lib in libraries if len(lib.routes) == len(MIXED_ROUTES)]
        for lib in libraries:
            if lib not in active and not lib.note:
                lib.note = "n/a: no store for every route"
        plan = mixed_plan(list(MIXED_ROUTES), sizes.mixed_ops)
        figures: dict[str, list[float]] = {lib.name: [] for lib in active}
        for lib in active:
            for route, ops in lib.routes.items():
                await lib.spaces[route].preload(ops, sizes.batch)
        for round_index in range(rounds + 1):
            shift = round_index % max(len(active), 1)
            for lib in active[shift:] + active[:shift]:
                run = functools.partial(
                    run_mixed, lib.routes, lib.spaces, plan, sizes.mixed_concurrency
                )
                rate = await measure(run)
                if round_index:
                    figures[lib.name].append(rate)
        for lib in active:
            for route, ops in lib.routes.items():
                await _clean(ops, lib.spaces[route])
        for lib in libraries:
            rates = tuple(figures.get(lib.name, ()))
            section.results.append(
                BenchResult(MIXED, MIXED, lib.name, rates, "" if rates else lib.note)
            )
        log("  mixed: done")
    return section


async def run_suite(
    backends: Sequence[str],
    servers: Servers,
    *,
    smoke: bool = False,
    rounds: int = 5,
    mixed: bool = True,
    log: Log = print,
) -> list[Section]:
    """Run the sections for ``backends`` (and ``mixed``); servers come from ``servers``."""
    sizes = Sizes.smoke() if smoke else Sizes()
    with tempfile.TemporaryDirectory(prefix="polystore-bench-") as tmp:
        workdir = Path(tmp)
        sections = [
            await run_backend(backend, servers, workdir, sizes, rounds, log) for backend in backends
        ]
        if mixed:
            sections.append(await run_mixed_section(servers, workdir, sizes, rounds, log, backends))
    return sections
