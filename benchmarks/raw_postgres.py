"""The limit for the ``postgres`` backend: asyncpg doing the same work.

One table per namespace as polystore lays it out (``key`` text primary key, the JSON text
in a ``json`` column, a random version, an expiry timestamp), reads filter expired rows,
a batch is one ``unnest`` statement, compare-and-set is ``UPDATE ... WHERE version = $n``.
The pool has polystore's default size (1 to 10 connections) and call timeout (10 s),
and, like polystore's, skips asyncpg's session reset on release (``RESET ALL; UNLISTEN
*; ...``: a second round trip per call, needless when no session state is changed).
Neither table has the GIN index that serves ``find`` (polystore builds it on a
namespace's first ``find``).
"""

from __future__ import annotations

import os
from contextlib import AsyncExitStack
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import orjson

from polystore.bench import Ops

LIVE = "(expires_at IS NULL OR expires_at > now())"


class RawPostgres:
    def __init__(self, pool: asyncpg.Pool, table: str, ttl: float | None) -> None:
        self.pool = pool
        self.ttl = ttl
        t = f'"{table}"'
        self.ddl = f"""CREATE TABLE IF NOT EXISTS {t} (
            key text COLLATE "C" PRIMARY KEY, value json NOT NULL, version text NOT NULL,
            expires_at timestamptz, updated_at timestamptz NOT NULL DEFAULT now())"""
        expiry = "now() + $4::float8 * interval '1 second'"
        self.get_sql = f"SELECT value FROM {t} WHERE key = $1 AND {LIVE}"
        self.get_entry_sql = f"SELECT value, version FROM {t} WHERE key = $1 AND {LIVE}"
        self.upsert_sql = (
            f"INSERT INTO {t} (key, value, version, expires_at) "
            f"VALUES ($1, $2::json, $3, {expiry}) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value, version = excluded.version, "
            "expires_at = excluded.expires_at, updated_at = now()"
        )
        self.get_many_sql = f"SELECT key, value FROM {t} WHERE key = ANY($1::text[]) AND {LIVE}"
        self.save_many_sql = (
            f"INSERT INTO {t} (key, value, version, expires_at) "
            f"SELECT u.k, u.v::json, u.ver, {expiry} "
            "FROM unnest($1::text[], $2::text[], $3::text[]) AS u(k, v, ver) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value, version = excluded.version, "
            "expires_at = excluded.expires_at, updated_at = now()"
        )
        self.cas_sql = (
            f"UPDATE {t} SET value = $2::json, version = $3, updated_at = now() "
            f"WHERE key = $1 AND version = $4 AND {LIVE} RETURNING 1"
        )
        self.delete_many_sql = f"DELETE FROM {t} WHERE key = ANY($1::text[])"

    async def get(self, key: str) -> Any:
        text = await self.pool.fetchval(self.get_sql, key)
        return None if text is None else orjson.loads(text)

    async def save(self, key: str, value: Any) -> None:
        data = orjson.dumps(value).decode()
        await self.pool.execute(self.upsert_sql, key, data, os.urandom(8).hex(), self.ttl)

    async def get_many(self, keys: list[str]) -> list[Any]:
        rows = await self.pool.fetch(self.get_many_sql, keys)
        found = {row[0]: orjson.loads(row[1]) for row in rows}
        return [found.get(key) for key in keys]

    async def save_many(self, items: dict[str, Any]) -> None:
        data = [orjson.dumps(value).decode() for value in items.values()]
        versions = [os.urandom(8).hex() for _ in data]
        await self.pool.execute(self.save_many_sql, list(items), data, versions, self.ttl)

    async def delete_many(self, keys: list[str]) -> None:
        await self.pool.execute(self.delete_many_sql, keys)

    async def increment(self, key: str) -> None:
        while True:
            row = await self.pool.fetchrow(self.get_entry_sql, key)
            value = orjson.loads(row[0])
            value["n"] += 1
            new = orjson.dumps(value).decode()
            if await self.pool.fetchval(self.cas_sql, key, new, os.urandom(8).hex(), row[1]):
                return


async def _keep_session(conn: asyncpg.Connection) -> None:
    """No session state is changed, so nothing needs resetting on release."""


async def open_raw_postgres(
    stack: AsyncExitStack, url: str, *, collection: str, ttl: float | None = None
) -> Ops:
    """Create an asyncpg pool and table ``collection``; return the raw :class:`Ops`."""
    pool = await asyncpg.create_pool(
        url, min_size=1, max_size=10, command_timeout=10.0, reset=_keep_session
    )
    stack.push_async_callback(pool.close)
    raw = RawPostgres(pool, collection, ttl)
    await pool.execute(raw.ddl)
    return Ops(raw.get, raw.save, raw.get_many, raw.save_many, raw.increment, raw.delete_many)
