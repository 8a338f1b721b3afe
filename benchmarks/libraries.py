"""Which libraries run against which server, and how each one is opened.

Every opener has the signature ``opener(stack, server, location, *, collection, ttl)``
and returns the library's :class:`~polystore.bench.Ops`, registering its cleanup on
``stack``; it raises :class:`~benchmarks.peers.UnavailableError` when the library cannot
run there (the text becomes the table's note).
"""

from __future__ import annotations

from collections.abc import Awaitable
from contextlib import AsyncExitStack
from typing import Any, Protocol

from benchmarks.peers import AIOCACHE, PYKV, UnavailableError, open_aiocache, open_pykv
from polystore import BackendNotFoundError, PluginManager
from polystore.bench import Ops, store_ops

POLYSTORE = "polystore"
RAW = "raw"
LIBRARY_ORDER = (POLYSTORE, RAW, PYKV, AIOCACHE)


class Opener(Protocol):
    def __call__(
        self,
        stack: AsyncExitStack,
        server: str,
        location: str,
        *,
        collection: str,
        ttl: float | None = None,
    ) -> Awaitable[Ops]: ...


def polystore_settings(server: str, location: str) -> dict[str, Any]:
    """Backend options for ``server``: the URL, or the file path for sqlite."""
    if server == "sqlite":
        return {"plugin": "sqlite", "path": location, "synchronous": "FULL"}
    return {"plugin": server, "url": location}


async def open_polystore(
    stack: AsyncExitStack, server: str, location: str, *, collection: str, ttl: float | None = None
) -> Ops:
    """A polystore store built through the plugin registry, as an application would."""
    try:
        spec = PluginManager().backends.get(server)
    except BackendNotFoundError as exc:
        raise UnavailableError(f"not installed ({exc.message.split(';')[0]})") from exc
    backend = spec.build(polystore_settings(server, location), instance_name="bench")
    await stack.enter_async_context(backend)
    return store_ops(backend.namespace(collection), ttl=ttl)


async def open_raw(
    stack: AsyncExitStack, server: str, location: str, *, collection: str, ttl: float | None = None
) -> Ops:
    """The raw driver for ``server``."""
    if server == "sqlite":
        from benchmarks.raw_sqlite import open_raw_sqlite

        return await open_raw_sqlite(stack, location, ttl=ttl)
    if server == "redis":
        from benchmarks.raw_redis import open_raw_redis

        return await open_raw_redis(stack, location, collection=collection, ttl=ttl)
    if server == "postgres":
        from benchmarks.raw_postgres import open_raw_postgres

        return await open_raw_postgres(stack, location, collection=collection, ttl=ttl)
    if server == "mongodb":
        from benchmarks.raw_mongodb import open_raw_mongodb

        return await open_raw_mongodb(stack, location, collection=collection, ttl=ttl)
    raise UnavailableError(f"n/a: no raw driver for {server}")


OPENERS: dict[str, Opener] = {
    POLYSTORE: open_polystore,
    RAW: open_raw,
    PYKV: open_pykv,
    AIOCACHE: open_aiocache,
}


def libraries_for(server: str) -> tuple[str, ...]:
    """The libraries compared on ``server`` (peers have no embedded SQLite store)."""
    return (POLYSTORE, RAW) if server == "sqlite" else LIBRARY_ORDER
