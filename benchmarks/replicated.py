"""``--backend replicated``: a ReplicatedStore over 3 Redis servers against one bare store.

Three private ``redis-server`` processes (no AOF: the figures are about the client and
the servers' CPU, not the disk) are started here. The bare store uses server 1; the
replicated store (W = 2, R = 2) copies every key to servers 1-3. Every workload runs both
targets interleaved round by round, as the other sections do; ``replicated / bare`` is
the median of the per-round ratios. CAS is not run: a replicated store does not offer it.
"""

from __future__ import annotations

import asyncio
import statistics
from collections.abc import Callable
from contextlib import AsyncExitStack, ExitStack
from dataclasses import dataclass, field
from typing import Any

from benchmarks.servers import start_redis_servers
from polystore import PluginManager
from polystore.bench import SINGLE_WORKLOADS, KeySpace, Ops, Sizes, Workload, interleave, store_ops
from polystore.protocol import DataStore
from polystore.replication import ReplicatedStore

REPLICATED = "replicated"
BARE = "bare"
COPIES = "3 replicas W=2 R=2"
Log = Callable[[str], None]


async def _save_concurrent(ops: Ops, sizes: Sizes, space: KeySpace) -> int:
    save, keys, docs, size, step = ops.save, space.keys, space.docs, space.size, sizes.concurrency

    async def worker(first: int) -> None:
        for i in range(first, sizes.concurrent_ops, step):
            await save(keys[i % size], docs[i % size])

    await asyncio.gather(*(worker(w) for w in range(step)))
    return sizes.concurrent_ops


WORKLOADS = (
    *(w for w in SINGLE_WORKLOADS if not w.needs_cas),
    Workload("save_concurrent", _save_concurrent),
)


@dataclass
class ReplicatedSection:
    """Ops/s per round by workload and target, and where it ran."""

    where: str = ""
    rates: dict[str, dict[str, list[float]]] = field(default_factory=dict)

    def ratio(self, workload: str) -> float:
        """Median of the per-round ratios ``replicated / bare``."""
        rates = self.rates[workload]
        return statistics.median(a / b for a, b in zip(rates[COPIES], rates[BARE], strict=True))

    def lines(self) -> list[str]:
        """The section as Markdown."""
        header = ["workload", f"{BARE} ops/s", f"{COPIES} ops/s", "replicated / bare"]
        rows = [
            [
                workload,
                f"{statistics.median(rates[BARE]):,.0f}",
                f"{statistics.median(rates[COPIES]):,.0f}",
                f"{self.ratio(workload):.3f}",
            ]
            for workload, rates in self.rates.items()
        ]
        widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
        out = [f"### replicated — {self.where}", ""]
        for index, row in enumerate([header, *rows]):
            out.append(
                "| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |"
            )
            if index == 0:
                out.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
        return [*out, ""]

    def as_json(self) -> dict[str, Any]:
        """Every figure."""
        return {"backend": REPLICATED, "status": "", "where": self.where, "rates": self.rates}


async def _targets(stack: AsyncExitStack, urls: list[str]) -> dict[str, DataStore]:
    spec = PluginManager().backends.get("redis")
    backends = []
    for index, url in enumerate(urls):
        backend = spec.build({"plugin": "redis", "url": url}, instance_name=f"replica{index}")
        backends.append(await stack.enter_async_context(backend))
    replicas = {
        f"r{i}": backend.namespace("bench_replicated") for i, backend in enumerate(backends)
    }
    return {
        BARE: backends[0].namespace("bench_bare"),
        COPIES: ReplicatedStore(replicas, write_quorum=2, read_quorum=2),
    }


async def run_replicated(
    *, smoke: bool, rounds: int, seconds: float | None, log: Log = print
) -> ReplicatedSection:
    """Start three Redis servers, run every workload on both targets, stop the servers."""
    section = ReplicatedSection()
    sizes = Sizes.smoke() if smoke else Sizes()
    with ExitStack() as servers:
        urls = start_redis_servers(servers, 3, "replica")
        section.where = "3 private redis-server processes (no AOF), 32 concurrent tasks"
        async with AsyncExitStack() as stack:
            targets = await _targets(stack, urls)
            spaces = {name: KeySpace("doc:", sizes.keyspace) for name in targets}
            ops = {name: store_ops(store) for name, store in targets.items()}
            for workload in WORKLOADS:

                async def prepare(name: str, s: Sizes, workload: Workload = workload) -> None:
                    await workload.prepare(ops[name], s, spaces[name])

                async def measured(name: str, s: Sizes, workload: Workload = workload) -> int:
                    return await workload.run(ops[name], s, spaces[name])

                section.rates[workload.name] = await interleave(
                    list(targets), prepare, measured, sizes, rounds, seconds
                )
                log(f"  replicated {workload.name}: done")
            replicated = targets[COPIES]
            assert isinstance(replicated, ReplicatedStore)
            await replicated.aclose()
    return section
