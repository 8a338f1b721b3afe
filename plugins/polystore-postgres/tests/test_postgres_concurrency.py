"""Several processes and many tasks starting on the same empty schema at once."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
import uuid
from typing import Any

import asyncpg
import pytest
from polystore_postgres import PostgresBackend, PostgresSettings
from polystore_postgres.naming import table_for_namespace

from polystore.testing.services import ServiceEndpoint

pytestmark = pytest.mark.asyncio

PROCESSES = 3
NAMESPACE = "shared/ns.1"

SCRIPT = """
import asyncio, sys, time
from polystore_postgres import PostgresBackend, PostgresSettings

url, schema, number, start_at = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])

async def main():
    settings = PostgresSettings(url=url, schema=schema, reap_interval=None, min_pool_size=0)
    backend = PostgresBackend(settings)
    time.sleep(max(0.0, start_at - time.time()))
    async with backend:
        store = backend.namespace(sys.argv[5])
        await store.save(f"from-{number}", number)
        assert await store.get(f"from-{number}") == number

asyncio.run(main())
print("ok")
"""


async def _count(url: str, query: str, *args: Any) -> int:
    conn = await asyncpg.connect(url)
    try:
        count: int = await conn.fetchval(query, *args)
        return count
    finally:
        await conn.close()


async def test_processes_initialising_one_namespace_at_once_all_succeed(
    postgres_service: ServiceEndpoint,
) -> None:
    schema = f"race_{uuid.uuid4().hex[:10]}"
    start_at = time.time() + 2.0  # after every interpreter has imported everything
    argv = [postgres_service.url, schema, "", str(start_at), NAMESPACE]
    processes = [
        subprocess.Popen(  # noqa: ASYNC220 - waited for in a thread below
            [sys.executable, "-c", SCRIPT, *argv[:2], str(n), *argv[3:]],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(PROCESSES)
    ]
    outputs = await asyncio.gather(*(asyncio.to_thread(p.communicate, None, 60) for p in processes))

    assert [p.returncode for p in processes] == [0] * PROCESSES, outputs
    table = table_for_namespace(NAMESPACE)
    url = postgres_service.url
    assert await _count(url, f"SELECT count(*) FROM {schema}.polystore_namespaces") == 1
    assert await _count(url, f"SELECT count(*) FROM {schema}.polystore_meta") == 1
    assert await _count(url, f"SELECT count(*) FROM {schema}.{table}") == PROCESSES


async def test_many_backends_initialising_at_once_in_one_process_all_succeed(
    postgres_service: ServiceEndpoint,
) -> None:
    schema = f"race_{uuid.uuid4().hex[:10]}"
    settings = PostgresSettings(url=postgres_service.url, schema=schema, reap_interval=None)
    backends = [PostgresBackend(settings) for _ in range(8)]

    async def write(number: int, backend: PostgresBackend) -> None:
        async with backend:
            await backend.namespace(NAMESPACE).save(f"from-{number}", number)

    await asyncio.gather(*(write(n, b) for n, b in enumerate(backends)))
    async with PostgresBackend(settings) as reader:
        keys = [k async for k in reader.namespace(NAMESPACE).scan()]
    assert sorted(keys) == sorted(f"from-{n}" for n in range(8))
