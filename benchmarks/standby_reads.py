"""PostgreSQL: reads through a standby (``read_from = "replica"``) against the primary.

``python -m benchmarks.standby_reads`` starts a private primary with a streaming standby
and runs, interleaved round by round, two stores on the same table: one without
``replica_urls`` (every call on the primary) and one reading from the standby with
read-your-writes. Workloads: ``get`` of keys written long before (the standby has them),
and ``save`` then ``get`` of the same key (the read must wait for the standby or go to
the primary). Prints each store's median calls/s and the median per-round ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable

from polystore_postgres import PostgresBackend, PostgresSettings
from pydantic import SecretStr

from polystore.protocol import DataStore
from polystore.testing import LocalPostgresReplicaSet

KEYS = 500


async def _rate(op: Callable[[int], Awaitable[None]], count: int) -> float:
    started = time.perf_counter()
    for i in range(count):
        await op(i)
    return count / (time.perf_counter() - started)


def _workloads(store: DataStore) -> dict[str, tuple[Callable[[int], Awaitable[None]], int]]:
    async def get(i: int) -> None:
        await store.get(f"k{i % KEYS}")

    async def save_then_get(i: int) -> None:
        await store.save(f"p{i % 100}", i)
        await store.get(f"p{i % 100}")

    return {"get": (get, 1000), "save then get": (save_then_get, 200)}


async def measure(servers: LocalPostgresReplicaSet, rounds: int) -> None:
    primary = PostgresBackend(PostgresSettings(url=SecretStr(servers.url), reap_interval=None))
    standby = PostgresBackend(
        PostgresSettings(
            url=SecretStr(servers.url),
            replica_urls=(SecretStr(servers.standby_url),),
            read_from="replica",
            reap_interval=None,
        )
    )
    async with primary, standby:
        stores = {"primary": primary.namespace("bench"), "standby": standby.namespace("bench")}
        await stores["primary"].save_many([(f"k{i}", {"i": i}) for i in range(KEYS)])
        await stores["standby"].get("k0")
        await asyncio.to_thread(servers.wait_caught_up)
        for workload in _workloads(stores["primary"]):
            rates: dict[str, list[float]] = {name: [] for name in stores}
            for _ in range(rounds):
                for name, store in stores.items():
                    op, count = _workloads(store)[workload]
                    rates[name].append(await _rate(op, count))
            ratio = statistics.median(
                s / p for s, p in zip(rates["standby"], rates["primary"], strict=True)
            )
            medians = ", ".join(f"{n} {statistics.median(r):,.0f}/s" for n, r in rates.items())
            print(f"{workload}: {medians}; standby/primary {ratio:.2f}")
        assert standby.standbys is not None
        print(f"reads answered by the standby: {standby.standbys.members[0].reads}")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args()
    servers = LocalPostgresReplicaSet(name="bench-standby")
    try:
        servers.start()
        asyncio.run(measure(servers, args.rounds))
    finally:
        servers.close()


if __name__ == "__main__":
    main()
