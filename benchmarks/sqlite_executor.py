"""polystore's SQLite store against a plain ``sqlite3`` connection driven from a thread
executor, the way many applications use SQLite from asyncio.

Both use one file in WAL mode with ``synchronous=FULL`` and the same upsert; the plain
connection runs each call as one executor job (statement and commit) on a one-thread
executor, since a ``sqlite3`` connection serves one thread at a time. Rounds alternate
the libraries; the ratios are medians of per-round ratios::

    .venv/bin/python -m benchmarks.sqlite_executor [--rounds 15] [--ops 300]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import orjson

from polystore.backends.sqlite import SqliteBackend, SqliteSettings
from polystore.bench import make_document
from polystore.types import JSONValue

UPSERT = (
    "INSERT INTO kv (key, value, version, expires_at, updated_at) VALUES (?, ?, ?, ?, ?) "
    "ON CONFLICT (key) DO UPDATE SET value = excluded.value, version = excluded.version, "
    "expires_at = excluded.expires_at, updated_at = excluded.updated_at"
)
GET = "SELECT value FROM kv WHERE key = ? AND (expires_at IS NULL OR expires_at > ?)"
CONCURRENCY = 32

Save = Callable[[str, JSONValue], Awaitable[object]]
Get = Callable[[str], Awaitable[object]]


class PlainSqlite:
    """One ``sqlite3`` connection on a one-thread executor."""

    def __init__(self, path: str) -> None:
        self.executor = ThreadPoolExecutor(max_workers=1)
        self.conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=FULL")
        self.conn.execute(
            "CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value TEXT NOT NULL, "
            "version TEXT NOT NULL, expires_at REAL, updated_at REAL NOT NULL) WITHOUT ROWID"
        )

    def _save(self, key: str, text: str) -> None:
        self.conn.execute(UPSERT, (key, text, os.urandom(8).hex(), None, time.time()))

    def _get(self, key: str) -> JSONValue:
        row = self.conn.execute(GET, (key, time.time())).fetchone()
        return None if row is None else orjson.loads(row[0])

    async def save(self, key: str, value: JSONValue) -> None:
        text = orjson.dumps(value).decode()
        await asyncio.get_running_loop().run_in_executor(self.executor, self._save, key, text)

    async def get(self, key: str) -> object:
        return await asyncio.get_running_loop().run_in_executor(self.executor, self._get, key)

    def close(self) -> None:
        self.executor.shutdown()
        self.conn.close()


async def _sequential(save: Save, ops: int, doc: JSONValue) -> float:
    started = time.perf_counter()
    for i in range(ops):
        await save(f"k{i % 1000}", doc)
    return ops / (time.perf_counter() - started)


async def _concurrent(call: Callable[[int], Awaitable[object]], ops: int) -> float:
    async def worker(first: int) -> None:
        for i in range(first, ops, CONCURRENCY):
            await call(i)

    started = time.perf_counter()
    await asyncio.gather(*(worker(w) for w in range(CONCURRENCY)))
    return ops / (time.perf_counter() - started)


async def main(rounds: int, ops: int) -> None:
    doc = make_document(1)
    with tempfile.TemporaryDirectory() as folder:
        plain = PlainSqlite(str(Path(folder) / "plain.db"))
        on = SqliteBackend(SqliteSettings(path=str(Path(folder) / "on.db")))
        off = SqliteBackend(SqliteSettings(path=str(Path(folder) / "off.db"), coalesce=False))
        async with on, off:
            libraries = {
                "polystore": on.namespace("bench"),
                "polystore, coalesce off": off.namespace("bench"),
            }
            saves: dict[str, Save] = {name: s.save for name, s in libraries.items()}
            gets: dict[str, Get] = {name: s.get for name, s in libraries.items()}
            saves["sqlite3 + executor"], gets["sqlite3 + executor"] = plain.save, plain.get
            for save in saves.values():
                await _sequential(save, 1000, doc)  # warm-up, and every key stored
            workloads: dict[str, Callable[[str], Awaitable[float]]] = {
                "save": lambda n: _sequential(saves[n], ops, doc),
                "save_concurrent": lambda n: _concurrent(
                    lambda i: saves[n](f"k{i % 1000}", doc), ops
                ),
                "get_concurrent": lambda n: _concurrent(lambda i: gets[n](f"k{i % 1000}"), ops),
            }
            names = list(saves)
            for workload, run in workloads.items():
                rates: dict[str, list[float]] = {name: [] for name in names}
                for r in range(rounds):
                    for name in names[r % len(names) :] + names[: r % len(names)]:
                        rates[name].append(await run(name))
                base = rates["sqlite3 + executor"]
                for name in names[:-1]:
                    ratio = statistics.median(a / b for a, b in zip(rates[name], base, strict=True))
                    print(
                        f"{workload:16} {name:24} {statistics.median(rates[name]):9.0f} ops/s"
                        f"   sqlite3+executor {statistics.median(base):9.0f} ops/s"
                        f"   ratio {ratio:.2f}"
                    )
        plain.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--ops", type=int, default=300)
    arguments = parser.parse_args()
    asyncio.run(main(arguments.rounds, arguments.ops))
