"""What the PostgreSQL backend guarantees beyond the shared conformance suite."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from decimal import Decimal
from typing import Any

import asyncpg
import orjson
import pytest
import pytest_asyncio
from polystore_postgres import (
    PostgresBackend,
    PostgreSQLStore,
    PostgresSettings,
    PostgresStoreError,
    PostgresTimeoutError,
    SerializationConflictError,
)
from polystore_postgres.errors import PostgresErrors
from polystore_postgres.schema import SCHEMA_VERSION

from polystore import (
    ConfigurationError,
    DataStoreTransaction,
    JSONValue,
    StoreError,
    StoreTimeoutError,
    UnknownOutcomeError,
    UnsupportedOperationError,
)
from polystore.testing import eventually
from polystore.testing.services import ServiceEndpoint

pytestmark = pytest.mark.asyncio


def _name(kind: str = "t") -> str:
    return f"{kind}-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def url(postgres_service: ServiceEndpoint) -> str:
    return postgres_service.url


@pytest_asyncio.fixture
async def backend(url: str) -> AsyncIterator[PostgresBackend]:
    async with PostgresBackend(PostgresSettings(url=url, reap_interval=None)) as backend:
        yield backend


@pytest_asyncio.fixture
async def store(backend: PostgresBackend) -> PostgreSQLStore:
    store = backend.namespace(_name())
    assert isinstance(store, PostgreSQLStore)
    await store.prepare()
    return store


@pytest_asyncio.fixture
async def conn(url: str) -> AsyncIterator[Any]:
    connection = await asyncpg.connect(url)
    yield connection
    await connection.close()


# -- values ---------------------------------------------------------------------------------


async def test_jsonb_would_lose_what_the_json_column_keeps(
    conn: Any, store: PostgreSQLStore
) -> None:
    # The measurement behind the json column: jsonb turns 1e16 into an integer and
    # drops the sign of -0.0; the stored text comes back exactly.
    assert await conn.fetchval("SELECT '1e16'::jsonb::text") == "10000000000000000"
    assert await conn.fetchval("SELECT '-0.0'::jsonb::text") == "0.0"
    value = {"big": 1e16, "negative_zero": -0.0, "z": 1, "a": 2}
    await store.save("k", value)
    got = await store.get("k")
    assert isinstance(got, dict)
    assert type(got["big"]) is float
    assert str(got["negative_zero"]) == "-0.0"
    assert list(got) == ["big", "negative_zero", "z", "a"]


async def test_decimal_amounts_stored_as_strings_round_trip_exactly(store: PostgreSQLStore) -> None:
    amount = Decimal("12345678901234567890.123456789")
    await store.save("tx-1", {"amount": str(amount), "currency": "EUR"})
    got = await store.get("tx-1")
    assert isinstance(got, dict)
    assert Decimal(str(got["amount"])) == amount


async def test_strings_holding_nul_round_trip_and_are_found(store: PostgreSQLStore) -> None:
    await store.save_many({"nul": {"f": "a\x00b", "g": 1}, "plain": {"f": "ab", "g": 1}})
    assert await store.get("nul") == {"f": "a\x00b", "g": 1}
    assert [e.key for e in await store.find({"f": "a\x00b"})] == ["nul"]
    assert [e.key for e in await store.find({"g": 1})] == ["nul", "plain"]


async def test_the_server_classifies_every_write_for_find(
    conn: Any, store: PostgreSQLStore
) -> None:
    # shape: 1 an object jsonb can hold, 2 an object holding NUL, 0 anything else.
    await store.save_many({"m-obj": {"a": 1}, "m-nul": {"a": "x\x00"}, "m-list": [1]})
    await store.save("s-obj", {"a": 1})
    await store.save("s-str", "{not an object}")
    version = await store.save("cas", {"a": 1})
    await store.save("cas", {"a": "\x00"}, if_version=version)
    await store.save("new", 7, if_absent=True)
    async with store.transaction() as tx:
        await tx.save("tx-nul", {"a": "\x00"})
    assert store.table is not None
    rows = await conn.fetch(f"SELECT key, shape FROM {store.table} ORDER BY key")
    assert {row["key"]: row["shape"] for row in rows} == {
        "cas": 2,
        "m-list": 0,
        "m-nul": 2,
        "m-obj": 1,
        "new": 0,
        "s-obj": 1,
        "s-str": 0,
        "tx-nul": 2,
    }


async def test_find_compares_large_numbers_as_python_does(store: PostgreSQLStore) -> None:
    await store.save_many({"int": {"n": 2**53 + 1}, "float": {"n": float(2**63)}})
    assert [e.key for e in await store.find({"n": 2**53 + 1})] == ["int"]
    assert await store.find({"n": float(2**53)}) == []
    assert [e.key for e in await store.find({"n": 2**63})] == ["float"]


async def test_find_with_a_limit_pages_past_rows_the_exact_filter_drops(
    store: PostgreSQLStore,
) -> None:
    # Rows holding NUL are not in the jsonb index, so SQL returns all of them as
    # candidates; the limit must still be reached with true matches.
    await store.save_many({f"a{i:02d}": {"t": "x", "pad": "\x00"} for i in range(30)})
    await store.save_many({f"b{i:02d}": {"t": "y"} for i in range(3)})
    found = await store.find({"t": "y"}, limit=2)
    assert [e.key for e in found] == ["b00", "b01"]


async def test_the_first_find_builds_the_jsonb_index_that_serves_later_ones(
    conn: Any, store: PostgreSQLStore
) -> None:
    await store.save_many({f"k{i}": {"city": f"c{i % 50}", "i": i} for i in range(500)})
    sql = store._sql
    assert sql is not None
    assert await conn.fetchval("SELECT to_regclass($1)", sql.query_index) is None
    assert len(await store.find({"city": "c7"})) == 10
    assert await eventually(_ready(store), timeout=30)
    await conn.execute(f"ANALYZE {sql.qualified}")
    async with conn.transaction():
        await conn.execute("SET LOCAL enable_seqscan = off")
        plan = await conn.fetchval(f"EXPLAIN (FORMAT JSON) {sql.find_all}", '{"city":"c7"}')
    assert f"{sql.table}_doc" in plan
    assert len(await store.find({"city": "c7"})) == 10


def _ready(store: PostgreSQLStore) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return store.query_index_ready

    return check


async def test_overwrites_in_a_namespace_never_queried_are_hot_updates(
    conn: Any, store: PostgreSQLStore
) -> None:
    # No index covers ``value``, so PostgreSQL rewrites the row in place (a HOT update)
    # without touching any index: writes cost what the raw table costs.
    sql = store._sql
    assert sql is not None
    await store.save("k", {"v": 0})
    for i in range(1, 20):
        await store.save("k", {"v": i})

    async def hot_updates() -> bool:
        count = await conn.fetchval(
            "SELECT n_tup_hot_upd FROM pg_stat_user_tables WHERE relid = to_regclass($1)",
            sql.qualified,
        )
        return bool(count and count >= 15)

    assert await eventually(hot_updates, timeout=15, every=0.2)


async def test_scan_treats_the_prefix_as_a_range_in_byte_order(store: PostgreSQLStore) -> None:
    keys = ["a", "a\U0010ffff", "a\U0010ffffz", "b", "ab", "a-", "a_", "A"]
    await store.save_many(dict.fromkeys(keys, 1))
    assert [k async for k in store.scan(prefix="a\U0010ffff")] == ["a\U0010ffff", "a\U0010ffffz"]
    assert [k async for k in store.scan(prefix="a", batch_size=2)] == sorted(
        k for k in keys if k.startswith("a")
    )


# -- layout ---------------------------------------------------------------------------------


async def test_the_namespace_table_and_the_layout_version_are_recorded(
    conn: Any, store: PostgreSQLStore
) -> None:
    sql = store._sql
    assert sql is not None
    owner = await conn.fetchval(
        "SELECT namespace FROM polystore.polystore_namespaces WHERE table_name = $1", sql.table
    )
    version = await conn.fetchval(
        "SELECT value FROM polystore.polystore_meta WHERE name = 'schema_version'"
    )
    assert owner == store.namespace
    assert version == str(SCHEMA_VERSION)


async def test_a_schema_from_a_newer_layout_is_refused(conn: Any, url: str) -> None:
    schema = f"s_{uuid.uuid4().hex[:10]}"
    async with PostgresBackend(PostgresSettings(url=url, schema=schema)):
        pass
    await conn.execute(
        f"UPDATE {schema}.polystore_meta SET value = '99' WHERE name = 'schema_version'"
    )
    with pytest.raises(ConfigurationError, match="newer"):
        async with PostgresBackend(PostgresSettings(url=url, schema=schema)):
            pass


async def test_a_pool_passed_in_is_used_and_never_closed(url: str) -> None:
    pool = await asyncpg.create_pool(url, min_size=1, max_size=2)
    try:
        async with PostgresBackend(PostgresSettings(reap_interval=None), pool=pool) as backend:
            assert backend.pool is pool
            store = backend.namespace(_name())
            await store.save("k", 1)
        assert not pool.is_closing()
        assert await pool.fetchval("SELECT 1") == 1
    finally:
        await pool.close()


async def test_health_reports_the_server_version(backend: PostgresBackend) -> None:
    health = await backend.health()
    assert health.ok is True
    assert health.detail.startswith("PostgreSQL ")


async def test_health_of_an_unreachable_server_is_not_ok_and_does_not_raise() -> None:
    settings = PostgresSettings(url="postgresql://nobody@127.0.0.1:1/none", connect_timeout=2)
    backend = PostgresBackend(settings)
    health = await backend.health()
    assert health.ok is False
    await backend.aclose()


# -- expiry sweeper -------------------------------------------------------------------------


async def test_reaping_removes_expired_rows_in_bounded_steps(
    conn: Any, backend: PostgresBackend, store: PostgreSQLStore
) -> None:
    sql = store._sql
    assert sql is not None
    await store.save_many({f"k{i}": i for i in range(5)}, ttl=0.05)
    await store.save("keep", 1)
    await asyncio.sleep(0.2)
    assert await store.reap_expired(max_rows=2) == 2
    assert await backend.reap_expired() >= 3
    assert await conn.fetchval(f"SELECT count(*) FROM {sql.qualified}") == 1


async def test_the_background_sweeper_reaps(conn: Any, url: str) -> None:
    settings = PostgresSettings(url=url, reap_interval=0.1)
    async with PostgresBackend(settings) as backend:
        store = backend.namespace(_name())
        assert isinstance(store, PostgreSQLStore)
        await store.save("k", 1, ttl=0.05)
        sql = store._sql
        assert sql is not None
        for _ in range(100):
            if await conn.fetchval(f"SELECT count(*) FROM {sql.qualified}") == 0:
                break
            await asyncio.sleep(0.05)
        assert await conn.fetchval(f"SELECT count(*) FROM {sql.qualified}") == 0


# -- transactions ---------------------------------------------------------------------------


class _Meeting:
    """Waits until ``parties`` tasks have arrived (asyncio.Barrier is Python 3.11+)."""

    def __init__(self, parties: int) -> None:
        self.missing = parties
        self.complete = asyncio.Event()

    async def arrive(self) -> None:
        self.missing -= 1
        if self.missing == 0:
            self.complete.set()
        await asyncio.wait_for(self.complete.wait(), 30)


async def _write_skew(store: PostgreSQLStore, mine: str, other: str, both_read: _Meeting) -> None:
    async with store.transaction() as tx:
        seen = await tx.get(other)
        await both_read.arrive()  # each has read before either writes, however busy
        if seen is None:
            await tx.save(mine, "on call")


async def test_serializable_transactions_refuse_write_skew(store: PostgreSQLStore) -> None:
    both_read = _Meeting(2)
    results = await asyncio.gather(
        _write_skew(store, "alice", "bob", both_read),
        _write_skew(store, "bob", "alice", both_read),
        return_exceptions=True,
    )
    conflicts = [r for r in results if isinstance(r, SerializationConflictError)]
    assert len(conflicts) == 1
    assert conflicts[0].sqlstate == "40001"
    assert sum(v is not None for v in await store.get_many(["alice", "bob"])) == 1


async def test_run_transaction_re_runs_the_work_after_a_conflict(store: PostgreSQLStore) -> None:
    await store.save("counter", 0)
    runs = 0
    all_read = _Meeting(5)

    async def increment(tx: DataStoreTransaction) -> None:
        nonlocal runs
        runs += 1
        first_run = runs <= 5
        value = await tx.get("counter")
        assert isinstance(value, int)
        if first_run:  # all five read the same value, so four must conflict and re-run
            await all_read.arrive()
        await tx.save("counter", value + 1)

    await asyncio.gather(*(store.run_transaction(increment, attempts=20) for _ in range(5)))
    assert await store.get("counter") == 5
    assert runs > 5


async def _prepared(url: str, rows: dict[str, JSONValue]) -> str:
    """A new namespace holding ``rows``, made with the default timeout: creating a table
    (and fsyncing it) on a busy machine may take longer than a test's short timeout."""
    name = _name()
    async with PostgresBackend(PostgresSettings(url=url, reap_interval=None)) as backend:
        await backend.namespace(name).save_many(rows)
    return name


async def test_a_transaction_that_swallowed_a_failed_statement_is_rolled_back(
    conn: Any, url: str
) -> None:
    settings = PostgresSettings(url=url, timeout=0.3, reap_interval=None)
    name = await _prepared(url, {"a": "before", "locked": "before"})
    async with PostgresBackend(settings) as backend:
        store = backend.namespace(name)
        assert isinstance(store, PostgreSQLStore)
        await store.prepare()
        sql = store._sql
        assert sql is not None
        async with conn.transaction():
            await conn.execute(f"SELECT 1 FROM {sql.qualified} WHERE key = 'locked' FOR UPDATE")

            async def carry_on_after_a_failure() -> None:
                async with store.transaction() as tx:
                    await tx.save("a", "during")
                    with contextlib.suppress(StoreError):
                        await tx.save("locked", "during")  # times out: the statement fails
                    with contextlib.suppress(StoreError):
                        await tx.save("new", "during")

            with pytest.raises(PostgresStoreError, match="rolled back"):
                await carry_on_after_a_failure()
        assert await store.get_many(["a", "locked", "new"]) == ["before", "before", None]


async def test_errors_raised_by_the_body_of_a_transaction_pass_through(
    conn: Any, store: PostgreSQLStore
) -> None:

    async def fail_in_the_body() -> None:
        async with store.transaction() as tx:
            await tx.save("a", 1)
            await conn.execute("SELECT * FROM no_such_table")

    with pytest.raises(asyncpg.UndefinedTableError):
        await fail_in_the_body()
    assert await store.get("a") is None


async def test_writing_through_the_store_inside_its_own_transaction_is_refused(
    store: PostgreSQLStore,
) -> None:
    async with store.transaction() as tx:
        await tx.save("a", 1)
        with pytest.raises(UnsupportedOperationError):
            await store.save("a", 2)
    assert await store.get("a") == 1


async def test_a_finished_transaction_cannot_be_used(store: PostgreSQLStore) -> None:
    async with store.transaction() as tx:
        await tx.save("a", 1)
    with pytest.raises(PostgresStoreError, match="ended"):
        await tx.save("b", 2)


# -- errors ---------------------------------------------------------------------------------


async def test_server_fields_are_reachable_on_the_translated_error(conn: Any) -> None:
    await conn.execute("CREATE TEMP TABLE t (id int CONSTRAINT t_pk PRIMARY KEY)")
    await conn.execute("INSERT INTO t VALUES (1)")
    with pytest.raises(asyncpg.UniqueViolationError) as info:
        await conn.execute("INSERT INTO t VALUES (1)")
    error = PostgresErrors("pg/ns", "save", "k").translate(info.value)
    assert isinstance(error, PostgresStoreError)
    assert (error.sqlstate, error.constraint_name) == ("23505", "t_pk")
    assert "pg/ns" in str(error)


async def test_a_statement_the_server_cancels_is_a_timeout_that_applied_nothing(
    conn: Any, url: str
) -> None:
    settings = PostgresSettings(url=url, statement_timeout=0.2, timeout=5, reap_interval=None)
    async with PostgresBackend(settings) as backend:
        store = backend.namespace(_name())
        assert isinstance(store, PostgreSQLStore)
        await store.save("k", "before")
        sql = store._sql
        assert sql is not None
        async with conn.transaction():
            await conn.execute(f"SELECT 1 FROM {sql.qualified} WHERE key = 'k' FOR UPDATE")
            with pytest.raises(PostgresTimeoutError) as info:
                await store.save("k", "after")
        assert info.value.sqlstate == "57014"
        assert await store.get("k") == "before"


async def test_a_write_that_times_out_after_sending_has_an_unknown_outcome(
    conn: Any, url: str
) -> None:
    settings = PostgresSettings(url=url, timeout=0.3, reap_interval=None)
    name = await _prepared(url, {"k": "before"})
    async with PostgresBackend(settings) as backend:
        store = backend.namespace(name)
        assert isinstance(store, PostgreSQLStore)
        await store.prepare()
        sql = store._sql
        assert sql is not None
        async with conn.transaction():
            await conn.execute(f"SELECT 1 FROM {sql.qualified} WHERE key = 'k' FOR UPDATE")
            # The driver's timer or the call's deadline may fire first on a busy machine:
            # either way the outcome is typed, as the core's classes.
            with pytest.raises(UnknownOutcomeError):
                await store.save("k", "after")
            await conn.execute(f"LOCK TABLE {sql.qualified} IN ACCESS EXCLUSIVE MODE")
            with pytest.raises(StoreTimeoutError):
                await store.get("k")


async def test_waiting_for_a_free_connection_is_bounded_by_the_timeout(url: str) -> None:
    timeout = 1.0  # the last call, on a busy machine, needs some of it
    settings = PostgresSettings(url=url, max_pool_size=1, timeout=timeout, reap_interval=None)
    name = await _prepared(url, {"k": 1})
    async with PostgresBackend(settings) as backend:
        store = backend.namespace(name)
        async with store.transaction() as tx:  # holds the only connection
            assert await tx.get("k") == 1
            started = asyncio.get_running_loop().time()
            with pytest.raises(StoreTimeoutError):
                await store.get("k")
            assert asyncio.get_running_loop().time() - started < timeout + 1.5
        assert await store.get("k") == 1


async def test_values_are_sent_as_parameters(conn: Any, store: PostgreSQLStore) -> None:
    value = {"q": "'); DROP TABLE x; --", "n": 1}
    await store.save("k", value)
    sql = store._sql
    assert sql is not None
    text = await conn.fetchval(f"SELECT value::text FROM {sql.qualified} WHERE key = 'k'")
    assert orjson.loads(text) == value
