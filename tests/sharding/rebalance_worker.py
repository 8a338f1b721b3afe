"""A process that adds a fourth shard and rebalances slowly, to be killed mid-way by a test.

Usage: python rebalance_worker.py REDIS_URL PREFIX. Prints one JSON line per batch.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

from polystore_redis import RedisBackend, RedisSettings

from polystore.sharding import RebalanceReport, ShardedStore, TopologyRecord


def slowly(report: RebalanceReport) -> None:
    print(json.dumps({"moved": report.moved, "scanned": report.scanned}), flush=True)
    time.sleep(0.05)


async def main(url: str, prefix: str) -> None:
    async with RedisBackend(RedisSettings(url=url, timeout=10)) as redis:
        shards = {sid: redis.namespace(f"{prefix}-{sid}") for sid in "abcd"}
        topology = TopologyRecord(redis.namespace(f"{prefix}-map"), refresh_interval=0.2)
        store = ShardedStore({k: shards[k] for k in "abc"}, topology=topology)
        await store.add_shard("d", shards["d"])
        await store.rebalance(progress=slowly)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
