"""The limit for the ``sqlite`` backend: aiosqlite with the same file layout and pragmas.

Like polystore, it keeps a reader and a writer connection in WAL mode (so reads never wait
for writes), stores JSON text with a random version and an expiry column, filters expired
rows on read, and writes batches in one transaction.
"""

from __future__ import annotations

import asyncio
import os
import time
from contextlib import AsyncExitStack
from typing import Any

import aiosqlite
import orjson

from polystore.bench import Ops

TABLE = "bench_raw"
SCHEMA = f"""CREATE TABLE IF NOT EXISTS {TABLE} (
    key TEXT PRIMARY KEY, value TEXT NOT NULL, version TEXT NOT NULL,
    expires_at REAL, updated_at REAL NOT NULL) WITHOUT ROWID"""
GET = f"SELECT value FROM {TABLE} WHERE key = ? AND (expires_at IS NULL OR expires_at > ?)"
GET_ENTRY = (
    f"SELECT value, version FROM {TABLE} WHERE key = ? AND (expires_at IS NULL OR expires_at > ?)"
)
UPSERT = (
    f"INSERT INTO {TABLE} (key, value, version, expires_at, updated_at) VALUES (?, ?, ?, ?, ?) "
    "ON CONFLICT (key) DO UPDATE SET value = excluded.value, version = excluded.version, "
    "expires_at = excluded.expires_at, updated_at = excluded.updated_at"
)
CAS = (
    f"UPDATE {TABLE} SET value = ?, version = ?, updated_at = ? "
    "WHERE key = ? AND version = ? RETURNING 1"
)


class RawSqlite:
    def __init__(
        self, reader: aiosqlite.Connection, writer: aiosqlite.Connection, ttl: float | None
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.lock = asyncio.Lock()
        self.ttl = ttl

    async def get(self, key: str) -> Any:
        rows = list(await self.reader.execute_fetchall(GET, (key, time.time())))
        return orjson.loads(rows[0][0]) if rows else None

    async def save(self, key: str, value: Any) -> None:
        now = time.time()
        expires = None if self.ttl is None else now + self.ttl
        row = (key, orjson.dumps(value).decode(), os.urandom(8).hex(), expires, now)
        async with self.lock:
            await self.writer.execute_fetchall(UPSERT, row)

    async def get_many(self, keys: list[str]) -> list[Any]:
        marks = ",".join("?" * len(keys))
        rows = await self.reader.execute_fetchall(
            f"SELECT key, value FROM {TABLE} WHERE key IN ({marks}) "
            "AND (expires_at IS NULL OR expires_at > ?)",
            (*keys, time.time()),
        )
        found = {key: orjson.loads(text) for key, text in rows}
        return [found.get(key) for key in keys]

    async def save_many(self, items: dict[str, Any]) -> None:
        now = time.time()
        expires = None if self.ttl is None else now + self.ttl
        rows = [
            (key, orjson.dumps(value).decode(), os.urandom(8).hex(), expires, now)
            for key, value in items.items()
        ]
        async with self.lock:
            await self.writer.execute("BEGIN IMMEDIATE")
            try:
                await self.writer.executemany(UPSERT, rows)
            except BaseException:
                await self.writer.execute("ROLLBACK")
                raise
            await self.writer.execute("COMMIT")

    async def delete_many(self, keys: list[str]) -> None:
        marks = ",".join("?" * len(keys))
        async with self.lock:
            await self.writer.execute_fetchall(f"DELETE FROM {TABLE} WHERE key IN ({marks})", keys)

    async def increment(self, key: str) -> None:
        while True:
            rows = list(await self.reader.execute_fetchall(GET_ENTRY, (key, time.time())))
            value = orjson.loads(rows[0][0])
            value["n"] += 1
            params = (
                orjson.dumps(value).decode(),
                os.urandom(8).hex(),
                time.time(),
                key,
                rows[0][1],
            )
            async with self.lock:
                if await self.writer.execute_fetchall(CAS, params):
                    return


async def _connect(path: str, synchronous: str) -> aiosqlite.Connection:
    conn = await aiosqlite.connect(path, isolation_level=None)
    await conn.execute("PRAGMA journal_mode=WAL")
    await conn.execute(f"PRAGMA synchronous={synchronous}")
    return conn


async def open_raw_sqlite(
    stack: AsyncExitStack, path: str, *, ttl: float | None = None, synchronous: str = "FULL"
) -> Ops:
    """Connect to the database file at ``path`` and return the raw :class:`Ops`."""
    writer = await _connect(path, synchronous)
    stack.push_async_callback(writer.close)
    await writer.execute(SCHEMA)
    reader = await _connect(path, synchronous)
    stack.push_async_callback(reader.close)
    raw = RawSqlite(reader, writer, ttl)
    return Ops(raw.get, raw.save, raw.get_many, raw.save_many, raw.increment, raw.delete_many)
