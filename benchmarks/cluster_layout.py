"""Redis Cluster: one namespace with hash tags (one slot) against without (every primary).

``python -m benchmarks.cluster_layout`` starts a private 3-primary cluster, fills one
namespace per layout with the same keys, then runs each workload on both layouts
interleaved round by round and prints, per workload, each layout's median ops/s, the
median of the per-round ratios, and how the servers' commands were spread over the
primaries (``total_commands_processed`` before and after). All primaries share this
machine's cores, so throughput says little about a real cluster; the spread says where a
namespace's load would go.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable

from polystore_redis import RedisBackend, RedisSettings
from pydantic import SecretStr

from polystore.protocol import DataStore
from polystore.testing import LocalRedisCluster
from polystore.testing._servers import redis_command

KEYS = 2000
CONCURRENCY = 32
LAYOUTS = {"tagged": True, "untagged": False}


def _commands(cluster: LocalRedisCluster) -> list[int]:
    counts = []
    for node in cluster.nodes:
        info = redis_command(node.port, "INFO", "stats")
        line = next(x for x in info.splitlines() if x.startswith("total_commands_processed:"))
        counts.append(int(line.split(":")[1]))
    return counts


def _workloads(store: DataStore) -> dict[str, Callable[[int], Awaitable[None]]]:
    async def get(i: int) -> None:
        await store.get(f"k{i % KEYS}")

    async def save(i: int) -> None:
        await store.save(f"k{i % KEYS}", {"i": i})

    async def get_many(i: int) -> None:
        start = (i * 100) % (KEYS - 100)
        await store.get_many([f"k{j}" for j in range(start, start + 100)])

    return {"get": get, "save": save, "get_many of 100": get_many}


async def _run(op: Callable[[int], Awaitable[None]], count: int) -> float:
    queue = iter(range(count))

    async def worker() -> None:
        for i in queue:
            await op(i)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    return count / (time.perf_counter() - started)


async def measure(cluster: LocalRedisCluster, rounds: int, count: int) -> None:
    backends = {
        name: RedisBackend(
            RedisSettings(url=SecretStr(cluster.url), cluster=True, hash_tag_namespaces=tag)
        )
        for name, tag in LAYOUTS.items()
    }
    try:
        stores = {name: backend.namespace("hot") for name, backend in backends.items()}
        for store in stores.values():
            await store.save_many([(f"k{i}", {"i": i}) for i in range(KEYS)])
        print(f"{'workload':<16} {'layout':<9} {'ops/s':>8} {'share of commands per primary':>32}")
        for workload in _workloads(stores["tagged"]):
            speeds: dict[str, list[float]] = {name: [] for name in stores}
            spread: dict[str, list[int]] = {name: [0] * len(cluster.nodes) for name in stores}
            for _ in range(rounds):
                for name, store in stores.items():
                    before = _commands(cluster)
                    speeds[name].append(await _run(_workloads(store)[workload], count))
                    after = _commands(cluster)
                    spread[name] = [
                        s + a - b for s, a, b in zip(spread[name], after, before, strict=True)
                    ]
            for name in stores:
                total = sum(spread[name]) or 1
                shares = " ".join(f"{100 * c / total:5.1f}%" for c in spread[name])
                print(
                    f"{workload:<16} {name:<9} {statistics.median(speeds[name]):>8.0f} {shares:>32}"
                )
            ratios = [u / t for u, t in zip(speeds["untagged"], speeds["tagged"], strict=True)]
            print(f"{workload:<16} untagged/tagged: {statistics.median(ratios):.2f}")
    finally:
        for backend in backends.values():
            await backend.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--count", type=int, default=2000, help="calls per round")
    args = parser.parse_args()
    cluster = LocalRedisCluster()
    try:
        cluster.start()
        asyncio.run(measure(cluster, args.rounds, args.count))
    finally:
        cluster.close()


if __name__ == "__main__":
    main()
