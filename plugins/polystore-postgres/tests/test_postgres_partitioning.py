"""Partitioned namespace tables: by hash of the key, and by month for time-ordered keys.

The whole conformance suite runs on a hash-partitioned table in
test_postgres_conformance.py; these tests cover pruning, the month rule on keys, and
``maintain``.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg  # type: ignore[import-untyped,unused-ignore]
import pytest
import pytest_asyncio
from polystore_postgres import Partitioning, PostgresBackend, PostgreSQLStore, PostgresSettings

from polystore import ConflictError, ValidationError
from polystore.testing.services import ServiceEndpoint

TODAY = dt.date(2026, 12, 1)


def _backend(url: str, partitioning: Partitioning, schema: str | None = None) -> PostgresBackend:
    options: dict[str, Any] = {"schema": schema} if schema else {}
    return PostgresBackend(
        PostgresSettings(url=url, reap_interval=None, partitioning=partitioning, **options)
    )


async def _plan(url: str, table: str, key: str) -> dict[str, Any]:
    conn = await asyncpg.connect(url)
    try:
        text = await conn.fetchval(
            f"EXPLAIN (FORMAT JSON) SELECT value FROM {table} WHERE key = $1", key
        )
    finally:
        await conn.close()
    plan: dict[str, Any] = json.loads(text)[0]["Plan"]
    return plan


def _relations(plan: dict[str, Any]) -> list[str]:
    found = [plan["Relation Name"]] if "Relation Name" in plan else []
    for child in plan.get("Plans", []):
        found.extend(_relations(child))
    return found


@pytest_asyncio.fixture
async def hashed(postgres_service: ServiceEndpoint) -> AsyncIterator[PostgreSQLStore]:
    async with _backend(postgres_service.url, Partitioning(by="hash", partitions=8)) as backend:
        store = backend.namespace(f"h-{uuid.uuid4().hex[:10]}")
        assert isinstance(store, PostgreSQLStore)
        await store.prepare()
        yield store


@pytest.mark.asyncio
async def test_a_hash_partitioned_table_has_its_parts(
    hashed: PostgreSQLStore, postgres_service: ServiceEndpoint
) -> None:
    conn = await asyncpg.connect(postgres_service.url)
    try:
        bounds = await conn.fetch(
            "SELECT pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i "
            "JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = to_regclass($1)",
            hashed.table,
        )
    finally:
        await conn.close()

    assert sorted(row[0] for row in bounds) == [
        f"FOR VALUES WITH (modulus 8, remainder {i})" for i in range(8)
    ]


@pytest.mark.asyncio
async def test_a_key_lookup_reads_one_hash_part(
    hashed: PostgreSQLStore, postgres_service: ServiceEndpoint
) -> None:
    await hashed.save_many([(f"k{i}", i) for i in range(200)])
    assert hashed.table is not None

    plan = await _plan(postgres_service.url, hashed.table, "k7")

    relations = _relations(plan)
    assert len(relations) == 1
    assert relations[0].startswith(hashed.table.split(".")[1].strip('"') + "_h")


@pytest_asyncio.fixture
async def monthly(postgres_service: ServiceEndpoint) -> AsyncIterator[PostgreSQLStore]:
    partitioning = Partitioning(by="range", ahead=2, keep=1)
    async with _backend(postgres_service.url, partitioning) as backend:
        store = backend.namespace(f"m-{uuid.uuid4().hex[:10]}")
        assert isinstance(store, PostgreSQLStore)
        await store.prepare()
        yield store


@pytest.mark.asyncio
async def test_a_month_partitioned_namespace_refuses_keys_without_a_month_before_any_io(
    monthly: PostgreSQLStore,
) -> None:
    with pytest.raises(ValidationError, match="YYYY-MM"):
        await monthly.save("payment-17", {"amount": "1.00"})
    with pytest.raises(ValidationError, match="YYYY-MM"):
        await monthly.save_many([("2026-12-01/a", 1), ("payment-18", 2)])


@pytest.mark.asyncio
async def test_a_month_partitioned_namespace_keeps_every_behaviour(
    monthly: PostgreSQLStore,
) -> None:
    this_month = dt.datetime.now(dt.timezone.utc).date()
    first = f"{this_month:%Y-%m}-01T00:00:00Z/a"
    later = f"{this_month.year + (this_month.month // 12)}-{this_month.month % 12 + 1:02d}-01/b"

    version = await monthly.save(first, {"kind": "payment", "n": 1}, if_absent=True)
    with pytest.raises(ConflictError):
        await monthly.save(first, {"kind": "payment", "n": 9}, if_absent=True)
    await monthly.save(first, {"kind": "payment", "n": 2}, if_version=version)
    await monthly.save(later, {"kind": "refund", "n": 3}, ttl=60)
    async with monthly.transaction() as tx:
        await tx.save(f"{this_month:%Y-%m}-02/c", {"kind": "payment", "n": 4})

    assert await monthly.get(first) == {"kind": "payment", "n": 2}
    assert [key async for key in monthly.scan(prefix=f"{this_month:%Y-%m}")] == [
        first,
        f"{this_month:%Y-%m}-02/c",
    ]
    assert sorted(e.key for e in await monthly.find({"kind": "payment"})) == [
        first,
        f"{this_month:%Y-%m}-02/c",
    ]
    entry = await monthly.get_entry(later)
    assert entry is not None
    assert entry.expires_at is not None


@pytest.mark.asyncio
async def test_maintain_creates_months_ahead_and_detaches_old_ones(
    postgres_service: ServiceEndpoint,
) -> None:
    schema = f"maint_{uuid.uuid4().hex[:8]}"
    partitioning = Partitioning(by="range", ahead=2, keep=1)
    async with _backend(postgres_service.url, partitioning, schema) as backend:
        store = backend.namespace("ledger")
        assert isinstance(store, PostgreSQLStore)
        await store.prepare()
        table = store.table
        assert table is not None
        name = table.split(".")[1].strip('"')
        conn = await asyncpg.connect(postgres_service.url)
        try:
            # As if the table had been made in September 2026.
            for part in await conn.fetch(
                "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                "WHERE i.inhparent = to_regclass($1)",
                table,
            ):
                await conn.execute(f'DROP TABLE "{schema}"."{part[0]}"')
            for month, following in (("2026-09", "2026-10"), ("2026-10", "2026-11")):
                await conn.execute(
                    f'CREATE TABLE "{schema}"."{name}_{month.replace("-", "")}" PARTITION OF '
                    f"{table} FOR VALUES FROM ('{month}') TO ('{following}')"
                )
            await conn.execute(
                f"INSERT INTO {table} (key, value, version) VALUES ($1, '1', 'v')", "2026-09-30/x"
            )

            report = await backend.maintain(today=TODAY)
            again = await backend.maintain(today=TODAY)

            parts = sorted(
                row[0]
                for row in await conn.fetch(
                    "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                    "WHERE i.inhparent = to_regclass($1)",
                    table,
                )
            )
            archived = await conn.fetchval(f'SELECT count(*) FROM "{schema}"."{name}_202609"')
        finally:
            await conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
            await conn.close()

    assert report.created == [f"{schema}.{name}_{m}" for m in ("202612", "202701", "202702")]
    assert report.detached == [f"{schema}.{name}_202609", f"{schema}.{name}_202610"]
    assert again.created == []
    assert again.detached == []
    assert parts == [f"{name}_{m}" for m in ("202612", "202701", "202702")]
    assert archived == 1  # detached, not dropped: the rows stay for archiving


def test_partitioning_options_must_fit_its_kind() -> None:
    with pytest.raises(ValueError, match="ahead and keep"):
        Partitioning(by="hash", keep=3)
    with pytest.raises(ValueError, match="partitions applies"):
        Partitioning(by="range", partitions=4)
