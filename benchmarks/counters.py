"""Server-side command counters: how many commands one batch call really sends.

Each counter snapshots the server's own statistics before and after one call and returns
the difference by command (its own snapshot commands removed):

* Redis: ``INFO commandstats`` (calls per command; commands run inside a Lua script or a
  ``MULTI`` block count one by one, pipelining does not hide them);
* MongoDB: ``serverStatus`` ``opcounters`` (one per command on SecantusDB; a real
  ``mongod`` counts every statement of a bulk update);
* PostgreSQL: ``pg_stat_statements`` calls per normalised statement (an ``executemany``
  counts one call per row, even though asyncpg pipelines them).
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import asyncpg  # type: ignore[import-untyped]
import redis.asyncio as aioredis
from pymongo import AsyncMongoClient


class Counter(Protocol):
    async def snapshot(self) -> dict[str, int]: ...

    async def close(self) -> None: ...


async def count_commands(
    counter: Counter, call: Callable[[], Awaitable[Any]], *, tries: int = 3
) -> dict[str, int]:
    """Return the server commands one ``call()`` causes, by name.

    The server counts every client's commands, so a driver's periodic monitoring (PyMongo
    clients each send ``hello`` heartbeats, aligned when the clients started together) can
    land inside the window. Such traffic only adds: the call (an idempotent batch) runs
    ``tries`` times and the smallest count is its own.
    """
    fewest: dict[str, int] | None = None
    for _ in range(tries):
        before = await counter.snapshot()
        await call()
        after = await counter.snapshot()
        delta = {name: after.get(name, 0) - before.get(name, 0) for name in after}
        counts = {name: count for name, count in sorted(delta.items()) if count > 0}
        if fewest is None or sum(counts.values()) < sum(fewest.values()):
            fewest = counts
    assert fewest is not None  # tries >= 1
    return fewest


def describe(counts: dict[str, int] | None) -> str:
    """``"3 (evalsha 1, mget 2)"``, or ``"n/a"``."""
    if counts is None:
        return "n/a"
    total = sum(counts.values())
    parts = ", ".join(f"{name} {n}" for name, n in sorted(counts.items(), key=lambda i: -i[1]))
    return f"{total} ({parts})" if parts else "0"


class RedisCounter:
    def __init__(self, url: str) -> None:
        self._client = aioredis.Redis.from_url(url)

    async def snapshot(self) -> dict[str, int]:
        stats = await self._client.info("commandstats")
        return {
            name.removeprefix("cmdstat_"): int(fields["calls"])
            for name, fields in stats.items()
            if name != "cmdstat_info"
        }

    async def close(self) -> None:
        await self._client.aclose()


class MongoCounter:
    def __init__(self, url: str) -> None:
        self._client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(url)
        self._own = 0

    async def snapshot(self) -> dict[str, int]:
        status = await self._client.admin.command("serverStatus")
        counts = {name: int(n) for name, n in status.get("opcounters", {}).items()}
        counts["command"] = counts.get("command", 0) - self._own
        self._own += 1  # this serverStatus itself
        return counts

    async def close(self) -> None:
        await self._client.close()


class PostgresCounter:
    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn

    @classmethod
    async def open(cls, url: str) -> PostgresCounter | None:
        """A counter, or None when ``pg_stat_statements`` is not loaded on the server."""
        conn = await asyncpg.connect(url)
        try:
            await conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
            await conn.fetchval("SELECT count(*) FROM pg_stat_statements")
        except asyncpg.PostgresError:
            await conn.close()
            return None
        return cls(conn)

    async def snapshot(self) -> dict[str, int]:
        rows = await self._conn.fetch(
            "SELECT query, sum(calls)::bigint AS calls FROM pg_stat_statements "
            "WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) "
            "GROUP BY query"
        )
        counts: dict[str, int] = {}
        for row in rows:
            name = _statement_name(row["query"])
            if name is not None and "pg_stat_statements" not in row["query"]:
                counts[name] = counts.get(name, 0) + int(row["calls"])
        return counts

    async def close(self) -> None:
        await self._conn.close()


_POOL_RESET = {"CLOSE ALL", "UNLISTEN *", "SELECT pg_advisory_unlock_all()"}
_TABLE = re.compile(r"\b(?:FROM|INTO|UPDATE)\s+((?:\"[^\"]+\"|[\w.])+)", re.IGNORECASE)


def _statement_name(query: str) -> str | None:
    """``"SELECT bench_raw"`` for a statement; asyncpg's pool reset counts once."""
    text = " ".join(query.split())
    if text in _POOL_RESET:
        return None  # the same reset also runs RESET ALL, which stands for it
    if text == "RESET ALL":
        return "pool reset"
    verb = text.split(" ", 1)[0].upper()
    table = _TABLE.search(text)
    return f"{verb} {table.group(1)}" if table else text[:40]


async def open_counter(server: str, url: str) -> Counter | None:
    """The counter for ``server`` (``redis``, ``mongodb``, ``postgres``), or None."""
    if server == "redis":
        return RedisCounter(url)
    if server == "mongodb":
        return MongoCounter(url)
    if server == "postgres":
        with contextlib.suppress(OSError, asyncpg.PostgresError):
            return await PostgresCounter.open(url)
    return None


async def server_version(server: str, url: str) -> str:
    """The server's product and version, e.g. ``"redis 7.0.15"`` (best effort)."""
    try:
        if server == "redis":
            client = aioredis.Redis.from_url(url)
            try:
                info = await client.info("server")
            finally:
                await client.aclose()
            return f"redis {info.get('redis_version', '?')}"
        if server == "postgres":
            conn = await asyncpg.connect(url)
            try:
                return f"PostgreSQL {await conn.fetchval('SHOW server_version')}"
            finally:
                await conn.close()
        if server == "mongodb":
            mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(url)
            try:
                info = await mongo.admin.command("buildInfo")
            finally:
                await mongo.close()
            return f"MongoDB-compatible {info.get('version', '?')}"
    except Exception as exc:  # a version is only decoration
        return f"(version unknown: {type(exc).__name__})"
    return ""
