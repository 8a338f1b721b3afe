"""The limit for the ``postgres`` backend: asyncpg running the same statements on the same
table layout as polystore.

One table per namespace: ``key`` text primary key (``COLLATE "C"``), the JSON text in a
``json`` column, a random version, an expiry timestamp, the ``shape`` column that
``find`` relies on (object or not, and whether the text holds ``\\u0000``, which jsonb
cannot store), ``created_at``/``updated_at``, and the same two partial indexes. Reads
filter expired rows; a batch is one ``unnest`` statement over rows sorted by key (so
concurrent batches cannot deadlock); compare-and-set is ``UPDATE ... WHERE version = $n``.
The pool has polystore's default size (1 to 10 connections) and call timeout (10 s), and,
like polystore's, skips asyncpg's session reset on release (``RESET ALL; UNLISTEN *;
...``: a second round trip per call, needless when no session state is changed). Neither
table has the GIN index that serves ``find`` (polystore builds it on a namespace's first
``find``).
"""

from __future__ import annotations

import os
from contextlib import AsyncExitStack
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import orjson

from polystore.bench import Ops

LIVE = "(expires_at IS NULL OR expires_at > now())"
NUL = b"\\u0000"


def _holds_nul(data: bytes) -> bool:
    return b"\\" in data and NUL in data


class RawPostgres:
    def __init__(self, pool: asyncpg.Pool, table: str, ttl: float | None) -> None:
        self.pool = pool
        self.ttl = ttl
        t = f'"{table}"'
        self.ddl = [
            f"""CREATE TABLE IF NOT EXISTS {t} (
            key text COLLATE "C" PRIMARY KEY, value json NOT NULL, version text NOT NULL,
            expires_at timestamptz, shape smallint NOT NULL DEFAULT 0,
            created_at timestamptz NOT NULL DEFAULT now(),
            updated_at timestamptz NOT NULL DEFAULT now())""",
            f'CREATE INDEX IF NOT EXISTS "{table}_exp" ON {t} (expires_at) '
            "WHERE expires_at IS NOT NULL",
            f'CREATE INDEX IF NOT EXISTS "{table}_opq" ON {t} (key) WHERE shape = 2',
        ]
        expiry = "now() + $4::float8 * interval '1 second'"
        on_conflict = (
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value, "
            "version = excluded.version, expires_at = excluded.expires_at, "
            "shape = excluded.shape, updated_at = now(), "
            "created_at = CASE WHEN t.expires_at <= now() THEN now() ELSE t.created_at END"
        )
        self.get_sql = f"SELECT value FROM {t} WHERE key = $1 AND {LIVE}"
        self.get_entry_sql = f"SELECT value, version FROM {t} WHERE key = $1 AND {LIVE}"
        self.upsert_sql = (
            f"INSERT INTO {t} AS t (key, value, version, expires_at, shape) "
            f"VALUES ($1, $2::text::json, $3, {expiry}, "
            "CASE WHEN left($2::text, 1) <> '{' THEN 0 WHEN $5::bool THEN 2 ELSE 1 END) "
            f"{on_conflict}"
        )
        self.get_many_sql = f"SELECT key, value FROM {t} WHERE key = ANY($1::text[]) AND {LIVE}"
        self.save_many_sql = (
            f"INSERT INTO {t} AS t (key, value, version, expires_at, shape) "
            f"SELECT u.k, u.v::json, u.ver, {expiry}, "
            "CASE WHEN left(u.v, 1) <> '{' THEN 0 WHEN u.k = ANY($5::text[]) THEN 2 ELSE 1 END "
            f"FROM unnest($1::text[], $2::text[], $3::text[]) AS u(k, v, ver) {on_conflict}"
        )
        self.cas_sql = (
            f"UPDATE {t} SET value = $2::text::json, version = $3, "
            f"expires_at = {expiry}, "
            "shape = CASE WHEN left($2::text, 1) <> '{' THEN 0 WHEN $5::bool THEN 2 ELSE 1 END, "
            f"updated_at = now() WHERE key = $1 AND version = $6 AND {LIVE} RETURNING 1"
        )
        self.delete_many_sql = f"DELETE FROM {t} WHERE key = ANY($1::text[])"

    async def get(self, key: str) -> Any:
        text = await self.pool.fetchval(self.get_sql, key)
        return None if text is None else orjson.loads(text)

    async def save(self, key: str, value: Any) -> None:
        data = orjson.dumps(value)
        await self.pool.execute(
            self.upsert_sql, key, data.decode(), os.urandom(8).hex(), self.ttl, _holds_nul(data)
        )

    async def get_many(self, keys: list[str]) -> list[Any]:
        rows = await self.pool.fetch(self.get_many_sql, keys)
        found = {row[0]: orjson.loads(row[1]) for row in rows}
        return [found.get(key) for key in keys]

    async def save_many(self, items: dict[str, Any]) -> None:
        keys = sorted(items)
        data = [orjson.dumps(items[key]) for key in keys]
        nul = [key for key, text in zip(keys, data, strict=True) if _holds_nul(text)]
        versions = [os.urandom(8).hex() for _ in keys]
        texts = [text.decode() for text in data]
        await self.pool.execute(self.save_many_sql, keys, texts, versions, self.ttl, nul)

    async def delete_many(self, keys: list[str]) -> None:
        await self.pool.execute(self.delete_many_sql, keys)

    async def increment(self, key: str) -> None:
        while True:
            row = await self.pool.fetchrow(self.get_entry_sql, key)
            value = orjson.loads(row[0])
            value["n"] += 1
            data = orjson.dumps(value)
            new = os.urandom(8).hex()
            args = (key, data.decode(), new, self.ttl, _holds_nul(data), row[1])
            if await self.pool.fetchval(self.cas_sql, *args):
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
    for statement in raw.ddl:
        await pool.execute(statement)
    return Ops(raw.get, raw.save, raw.get_many, raw.save_many, raw.increment, raw.delete_many)
