"""Latency per call at 32-way concurrency: polystore against the raw driver.

32 tasks each make single-key calls (``get``, then ``save``) on one store; every call's
time is recorded. Rounds alternate polystore and raw (the same openers, servers and pool
sizes as the throughput suite); the table gives p50 and p99 in milliseconds over all
rounds, and throughput::

    .venv/bin/python -m benchmarks.latency [--backend redis ...] [--rounds 9] [--ops 1600]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from pathlib import Path

from benchmarks.libraries import OPENERS, POLYSTORE, RAW
from benchmarks.servers import Servers
from polystore.bench import Ops, make_document

CONCURRENCY = 32
KEYS = 1000


async def _run(call: Callable[[int], Awaitable[object]], ops: int) -> tuple[list[float], float]:
    times: list[float] = []

    async def worker(first: int) -> None:
        clock = time.perf_counter
        for i in range(first, ops, CONCURRENCY):
            started = clock()
            await call(i)
            times.append(clock() - started)

    started = time.perf_counter()
    await asyncio.gather(*(worker(w) for w in range(CONCURRENCY)))
    return times, ops / (time.perf_counter() - started)


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


async def _backend(backend: str, servers: Servers, workdir: Path, rounds: int, ops: int) -> None:
    location = str(workdir / "latency.db") if backend == "sqlite" else servers.url(backend)
    if location is None:
        print(f"{backend}: no server ({servers.problems.get(backend, 'unavailable')})")
        return
    doc = make_document(1)
    async with AsyncExitStack() as stack:
        libraries: dict[str, Ops] = {}
        for name in (POLYSTORE, RAW):
            where = location
            if backend == "sqlite":
                where = str(workdir / f"latency_{name}.db")
            libraries[name] = await OPENERS[name](
                stack, backend, where, collection=f"bench_latency_{name}"
            )
        for lib in libraries.values():
            await lib.save_many({f"lat:{i}": doc for i in range(KEYS)})
        workloads: dict[str, Callable[[Ops], Callable[[int], Awaitable[object]]]] = {
            "get": lambda lib: lambda i: lib.get(f"lat:{i % KEYS}"),
            "save": lambda lib: lambda i: lib.save(f"lat:{i % KEYS}", doc),
        }
        for workload, make in workloads.items():
            times: dict[str, list[float]] = {name: [] for name in libraries}
            rates: dict[str, list[float]] = {name: [] for name in libraries}
            names = list(libraries)
            for r in range(rounds + 1):
                for name in names if r % 2 else names[::-1]:
                    sample, rate = await _run(make(libraries[name]), ops)
                    if r:  # the first round warms up
                        times[name] += sample
                        rates[name].append(rate)
            for name in names:
                rate = sorted(rates[name])[len(rates[name]) // 2]
                print(
                    f"{backend:8} {workload:5} {name:9} p50 {_quantile(times[name], 0.5):7.2f} ms"
                    f"   p99 {_quantile(times[name], 0.99):7.2f} ms   {rate:9.0f} ops/s"
                )
        for lib in libraries.values():
            if lib.delete_many is not None:
                await lib.delete_many([f"lat:{i}" for i in range(KEYS)])


async def main(backends: list[str], rounds: int, ops: int) -> None:
    servers = Servers()
    try:
        with tempfile.TemporaryDirectory() as folder:
            for backend in backends:
                await _backend(backend, servers, Path(folder), rounds, ops)
    finally:
        await asyncio.to_thread(servers.close)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", action="append", dest="backends")
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--ops", type=int, default=1600)
    arguments = parser.parse_args()
    chosen = arguments.backends or ["sqlite", "redis", "postgres", "mongodb"]
    asyncio.run(main(chosen, arguments.rounds, arguments.ops))
