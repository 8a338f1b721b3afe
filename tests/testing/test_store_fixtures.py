"""The kit's per-test store fixtures, used as a new project would use them.

A fresh project (its own ``pytest.ini`` without any pytest-asyncio setting, and a
``conftest.py`` that enables the kit) runs in a subprocess, with warnings as errors: its
tests get empty stores in fresh namespaces, and its last test checks with the raw drivers
that nothing the earlier tests wrote is left on the servers.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

PROJECT_TESTS = """
import asyncpg
import pymongo
import pytest
import redis

NAMESPACES = []


async def use(store, run):
    assert [key async for key in store.scan()] == []
    await store.save("k", {"run": run})
    assert await store.get("k") == {"run": run}
    NAMESPACES.append(store.name)


@pytest.mark.asyncio
@pytest.mark.parametrize("run", [1, 2])
async def test_redis_store_starts_empty(redis_store, run):
    await use(redis_store, run)


@pytest.mark.asyncio
@pytest.mark.parametrize("run", [1, 2])
async def test_postgres_store_starts_empty(postgres_store, run):
    await use(postgres_store, run)


@pytest.mark.asyncio
@pytest.mark.parametrize("run", [1, 2])
async def test_mongodb_store_starts_empty(mongodb_store, run):
    await use(mongodb_store, run)


def test_every_namespace_was_distinct():
    assert len(NAMESPACES) == 6
    assert len(set(NAMESPACES)) == 6


@pytest.mark.asyncio
async def test_nothing_is_left_on_the_servers(redis_service, postgres_service, mongodb_service):
    assert redis.Redis.from_url(redis_service.url).dbsize() == 0
    conn = await asyncpg.connect(postgres_service.url)
    try:
        tables = await conn.fetch(
            "SELECT table_name FROM information_schema.tables WHERE table_name LIKE 'kv_%'"
        )
    finally:
        await conn.close()
    assert tables == []
    with pymongo.MongoClient(mongodb_service.url) as client:
        leftovers = [
            f"{db}.{name}"
            for db in client.list_database_names()
            if db not in ("admin", "local", "config")
            for name in client[db].list_collection_names()
            if name.startswith("test-") or "test-" in name
        ]
    assert leftovers == []
"""


def test_a_new_project_gets_clean_stores_and_no_loop_scope_warning(tmp_path: Path) -> None:
    (tmp_path / "pytest.ini").write_text("[pytest]\nfilterwarnings = error\n")
    (tmp_path / "conftest.py").write_text('pytest_plugins = ["polystore.testing"]\n')
    (tmp_path / "test_project.py").write_text(PROJECT_TESTS)
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-W", "error"],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        cwd=tmp_path,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "8 passed" in output
    assert "asyncio_default_fixture_loop_scope" not in output
