"""``--backend sharded``: a ShardedStore over 1, 2 and 4 Redis servers against one bare store.

Four private ``redis-server`` processes (no AOF: the figures are about the client and the
servers' CPU, not the disk) are started here. The bare store and the 1-shard sharded
store use server 1 (in different namespaces); 2 shards use servers 1-2, 4 shards 1-4.
A fifth target is one shard with its shard map kept in a ``TopologyRecord`` (as a route
from settings has it: each call checks whether the map is due for a re-read). Every
workload runs the targets interleaved round by round, as the other sections do;
``1 shard / bare`` and ``stored map / bare`` are medians of the per-round ratios (the
overhead target is >= 0.95), ``N shards / 1 shard`` the scaling.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Callable
from contextlib import AsyncExitStack, ExitStack
from dataclasses import dataclass, field
from typing import Any

from benchmarks.servers import start_redis_servers
from polystore import PluginManager
from polystore.bench import SINGLE_WORKLOADS, KeySpace, Ops, Sizes, Workload, interleave, store_ops
from polystore.protocol import DataStore
from polystore.sharding import ShardedStore, TopologyRecord

SHARDED = "sharded"
BARE = "bare"
TARGETS = {"1 shard": 1, "2 shards": 2, "4 shards": 4}
MAPPED = "1 shard, stored map"
OVERHEAD_GOAL = 0.95
Log = Callable[[str], None]


async def _save_concurrent(ops: Ops, sizes: Sizes, space: KeySpace) -> int:
    save, keys, docs, size, step = ops.save, space.keys, space.docs, space.size, sizes.concurrency

    async def worker(first: int) -> None:
        for i in range(first, sizes.concurrent_ops, step):
            await save(keys[i % size], docs[i % size])

    await asyncio.gather(*(worker(w) for w in range(step)))
    return sizes.concurrent_ops


WORKLOADS = (*SINGLE_WORKLOADS, Workload("save_concurrent", _save_concurrent))


@dataclass
class ShardedSection:
    """Ops/s per round by workload and target, and where it ran."""

    where: str = ""
    rates: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    cpu: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    """Client CPU time per op in microseconds, per round (the first is the warm-up)."""

    def ratio(self, workload: str, top: str, bottom: str) -> float:
        """Median of the per-round ratios ``top / bottom``."""
        rates = self.rates[workload]
        return statistics.median(a / b for a, b in zip(rates[top], rates[bottom], strict=True))

    def lines(self) -> list[str]:
        """The section as Markdown."""
        names = [BARE, *TARGETS, MAPPED]
        header = ["workload", *(f"{n} ops/s" for n in names), "1 shard / bare"]
        header += ["stored map / bare", "2 / 1 shard", "4 / 1 shard"]
        rows = []
        for workload, rates in self.rates.items():
            overhead = self.ratio(workload, "1 shard", BARE)
            mapped = self.ratio(workload, MAPPED, BARE)
            rows.append(
                [
                    workload,
                    *(f"{statistics.median(rates[n]):,.0f}" for n in names),
                    f"{overhead:.3f}{_mark(overhead)}",
                    f"{mapped:.3f}{_mark(mapped)}",
                    f"{self.ratio(workload, '2 shards', '1 shard'):.2f}",
                    f"{self.ratio(workload, '4 shards', '1 shard'):.2f}",
                ]
            )
        out = [f"### sharded — {self.where}", "", *_table(header, rows), ""]
        out += [
            "Client CPU time per op in µs (median; less sensitive to a busy machine than "
            "ops/s), and bare / target (the overhead target is >= 0.95):",
            "",
        ]
        cpu_rows = []
        for workload, per_target in self.cpu.items():
            medians = {n: statistics.median(t[1:] or t) for n, t in per_target.items()}
            cpu_rows.append(
                [
                    workload,
                    *(f"{medians[n]:.1f}" for n in names),
                    *(
                        f"{medians[BARE] / medians[n]:.3f}{_mark(medians[BARE] / medians[n])}"
                        for n in ("1 shard", MAPPED)
                    ),
                ]
            )
        cpu_header = ["workload", *names, "bare / 1 shard", "bare / stored map"]
        return [*out, *_table(cpu_header, cpu_rows), ""]

    def as_json(self) -> dict[str, Any]:
        """Every figure."""
        return {
            "backend": SHARDED,
            "status": "",
            "where": self.where,
            "rates": self.rates,
            "cpu_us_per_op": self.cpu,
        }


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    out = []
    for index, row in enumerate([header, *rows]):
        out.append("| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |")
        if index == 0:
            out.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return out


def _mark(ratio: float) -> str:
    return " ✓" if ratio >= OVERHEAD_GOAL else " ✗"


async def _targets(stack: AsyncExitStack, urls: list[str]) -> dict[str, DataStore]:
    spec = PluginManager().backends.get("redis")
    backends = []
    for index, url in enumerate(urls):
        backend = spec.build({"plugin": "redis", "url": url}, instance_name=f"shard{index}")
        backends.append(await stack.enter_async_context(backend))
    targets: dict[str, DataStore] = {BARE: backends[0].namespace("bench_bare")}
    for name, count in TARGETS.items():
        ns = f"bench_sharded_{count}"
        shards = {f"s{i}": backends[i].namespace(ns) for i in range(count)}
        targets[name] = ShardedStore(shards)
    record = TopologyRecord(backends[0].namespace("bench_map"), refresh_interval=5.0)
    mapped = ShardedStore({"s0": backends[0].namespace("bench_mapped")}, topology=record)
    await mapped.refresh()
    targets[MAPPED] = mapped
    return targets


async def run_sharded(
    *, smoke: bool, rounds: int, seconds: float | None, log: Log = print
) -> ShardedSection:
    """Start four Redis servers, run every workload on every target, stop the servers."""
    section = ShardedSection()
    sizes = Sizes.smoke() if smoke else Sizes()
    with ExitStack() as servers:
        urls = start_redis_servers(servers, 4, "shard")
        section.where = "4 private redis-server processes (no AOF), 32 concurrent tasks"
        async with AsyncExitStack() as stack:
            targets = await _targets(stack, urls)
            spaces = {name: KeySpace("doc:", sizes.keyspace) for name in targets}
            ops = {name: store_ops(store) for name, store in targets.items()}
            for workload in WORKLOADS:

                async def prepare(name: str, s: Sizes, workload: Workload = workload) -> None:
                    await workload.prepare(ops[name], s, spaces[name])

                cpu = section.cpu.setdefault(workload.name, {})

                async def measured(
                    name: str,
                    s: Sizes,
                    workload: Workload = workload,
                    cpu: dict[str, list[float]] = cpu,
                ) -> int:
                    started = time.process_time()
                    count = await workload.run(ops[name], s, spaces[name])
                    cpu.setdefault(name, []).append((time.process_time() - started) / count * 1e6)
                    return count

                section.rates[workload.name] = await interleave(
                    list(targets), prepare, measured, sizes, rounds, seconds
                )
                log(f"  sharded {workload.name}: done")
    return section
