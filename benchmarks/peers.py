"""The libraries a user would otherwise pick, used through their documented APIs.

* py-key-value-aio (``key_value.aio``): ``RedisStore``, ``MongoDBStore``,
  ``PostgreSQLStore``; values must be dicts; no compare-and-set, so ``cas`` is n/a.
  Its MongoDB store gets a client with the same write concern as everyone else.
* aiocache: ``RedisCache`` with its default ``JsonSerializer``; compare-and-set through
  ``OptimisticLock`` (documented use: read inside the lock, then ``lock.cas``).
"""

from __future__ import annotations

import functools
import warnings
from contextlib import AsyncExitStack
from typing import Any
from urllib.parse import urlsplit

from polystore.bench import Ops

PYKV = "py-key-value"
AIOCACHE = "aiocache"


class UnavailableError(Exception):
    """The library cannot run here (not installed, or no such store); the text says why."""


def _make_pykv(stack: AsyncExitStack, server: str, location: str, collection: str) -> Any:
    try:
        if server == "redis":
            from key_value.aio.stores.redis import RedisStore

            return RedisStore(url=location, default_collection=collection)
        if server == "mongodb":
            from key_value.aio.stores.mongodb import MongoDBStore

            from benchmarks.raw_mongodb import durable_client

            client = durable_client(location)
            stack.push_async_callback(client.close)
            return MongoDBStore(client=client, db_name="bench_pykv", default_collection=collection)
        if server == "postgres":
            from key_value.aio.stores.postgresql import PostgreSQLStore

            return PostgreSQLStore(
                url=location, table_name="bench_pykv", default_collection=collection
            )
    except ImportError as exc:
        raise UnavailableError(f"not installed: {exc}") from exc
    raise UnavailableError(f"n/a: no {server} store")


async def open_pykv(
    stack: AsyncExitStack, server: str, location: str, *, collection: str, ttl: float | None = None
) -> Ops:
    """A py-key-value-aio store for ``server`` (``redis``, ``mongodb``, ``postgres``)."""
    with warnings.catch_warnings():  # "A configured store is unstable ...": not news here
        warnings.filterwarnings("ignore", message="A configured store is unstable")
        store = _make_pykv(stack, server, location, collection)
    await stack.enter_async_context(store)

    async def save_many(items: dict[str, Any]) -> None:
        await store.put_many(list(items), list(items.values()), ttl=ttl)

    save = store.put if ttl is None else functools.partial(store.put, ttl=ttl)
    return Ops(store.get, save, store.get_many, save_many, None, store.delete_many)


async def open_aiocache(
    stack: AsyncExitStack, server: str, location: str, *, collection: str, ttl: float | None = None
) -> Ops:
    """An aiocache ``RedisCache`` (Redis only)."""
    if server != "redis":
        raise UnavailableError("n/a: Redis only")
    from aiocache import RedisCache  # type: ignore[import-untyped]
    from aiocache.lock import (  # type: ignore[import-untyped]
        OptimisticLock,
        OptimisticLockError,
    )

    parts = urlsplit(location)
    cache = RedisCache(
        endpoint=parts.hostname or "127.0.0.1",
        port=parts.port or 6379,
        db=int(parts.path.strip("/") or 0),
        password=parts.password,
        namespace=f"bench:{collection}",
    )
    stack.push_async_callback(cache.close)

    async def save_many(items: dict[str, Any]) -> None:
        await cache.multi_set(list(items.items()), ttl=ttl)

    async def increment(key: str) -> None:
        while True:
            async with OptimisticLock(cache, key) as lock:
                value = await cache.get(key)
                value["n"] += 1
                try:
                    await lock.cas(value)
                except OptimisticLockError:
                    continue
                return

    async def delete_many(keys: list[str]) -> None:
        for key in keys:
            await cache.delete(key)

    save = cache.set if ttl is None else functools.partial(cache.set, ttl=ttl)
    return Ops(cache.get, save, cache.multi_get, save_many, increment, delete_many)
