"""The limit for the ``redis`` backend: redis-py asyncio doing the same work.

Values are stored as polystore stores them, one string holding a 16-hex-digit version
followed by the JSON, so a compare-and-set can run as one Lua script (``EVALSHA``). The
client has the same pool size and timeouts as polystore's default settings.
"""

from __future__ import annotations

import os
from contextlib import AsyncExitStack
from typing import Any, cast

import orjson
import redis.asyncio as aioredis

from polystore.bench import Ops

CAS_SAVE = """
local cur = redis.call('GET', KEYS[1])
if not cur or string.sub(cur, 1, 16) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2])
return 1
"""


class RawRedis:
    def __init__(self, client: aioredis.Redis, prefix: str, ttl: float | None) -> None:
        self.client = client
        self.prefix = prefix
        self.px = None if ttl is None else int(ttl * 1000)
        self.cas = client.register_script(CAS_SAVE)

    async def get(self, key: str) -> Any:
        data = await self.client.get(self.prefix + key)
        return None if data is None else orjson.loads(data[16:])

    async def save(self, key: str, value: Any) -> None:
        data = os.urandom(8).hex().encode() + orjson.dumps(value)
        await self.client.set(self.prefix + key, data, px=self.px)

    async def get_many(self, keys: list[str]) -> list[Any]:
        prefix = self.prefix
        found = await self.client.mget([prefix + key for key in keys])
        return [None if data is None else orjson.loads(data[16:]) for data in found]

    async def save_many(self, items: dict[str, Any]) -> None:
        prefix, dumps = self.prefix, orjson.dumps
        mapping = {
            prefix + key: os.urandom(8).hex().encode() + dumps(v) for key, v in items.items()
        }
        if self.px is None:
            await self.client.mset(mapping)
            return
        async with self.client.pipeline(transaction=False) as pipe:
            for key, data in mapping.items():
                pipe.set(key, data, px=self.px)
            await pipe.execute()

    async def delete_many(self, keys: list[str]) -> None:
        await self.client.delete(*(self.prefix + key for key in keys))

    async def increment(self, key: str) -> None:
        full = self.prefix + key
        while True:
            data = cast(bytes, await self.client.get(full))
            version = data[:16]
            value = orjson.loads(data[16:])
            value["n"] += 1
            new = os.urandom(8).hex().encode() + orjson.dumps(value)
            if await self.cas(keys=[full], args=[version, new]):
                return


async def open_raw_redis(
    stack: AsyncExitStack, url: str, *, collection: str, ttl: float | None = None
) -> Ops:
    """Connect with redis-py and return the raw :class:`Ops` for keys ``bench:{collection}:``."""
    client = aioredis.Redis.from_url(
        url, max_connections=50, socket_timeout=5.0, socket_connect_timeout=5.0
    )
    stack.push_async_callback(client.aclose)
    raw = RawRedis(client, f"bench:{collection}:", ttl)
    return Ops(raw.get, raw.save, raw.get_many, raw.save_many, raw.increment, raw.delete_many)
