"""The conformance suite every backend runs: subclass :class:`StoreConformance`.

A backend's test file provides a ``store`` fixture (a fresh, isolated namespace per
test) and, to run the namespace-isolation tests, a ``sibling_store`` fixture (another
namespace of the same backend)::

    import pytest_asyncio
    from polystore.testing import StoreConformance

    class TestMyStore(StoreConformance):
        @pytest_asyncio.fixture
        async def store(self):
            async with MyBackend(MySettings()) as backend:
                yield backend.namespace(f"t{uuid.uuid4().hex}")

Tests are gated on the capabilities the store declares, never on backend names: a store
that declares ``CAS`` must pass every CAS test; one that does not must refuse CAS calls
with :class:`~polystore.errors.UnsupportedOperationError`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from polystore.errors import (
    AlreadyExistsError,
    ConflictError,
    SerializationError,
    UnsupportedOperationError,
    ValidationError,
)
from polystore.protocol import DataStore
from polystore.types import Capabilities, JSONValue, Version

__all__ = ["StoreConformance", "eventually", "requires"]

TTL_SHORT = 0.4
EXPIRY_DEADLINE = 15.0

JSON_VALUES: list[JSONValue] = [
    None,
    True,
    False,
    0,
    -1,
    2**53 + 1,
    2**63 - 1,
    -(2**63),
    1.5,
    -2.25e-10,
    1e300,
    "",
    "plain text",
    [],
    [1, "two", None, False, 2.5, [3], {"four": 4}],
    {},
    {"a": 1, "b": [True, None], "c": {"d": "e"}},
]

BAD_KEYS: list[Any] = ["", "a\x00b", "x" * 1025, "é" * 513, b"bytes", 42, None, ("t",), "\ud800"]
BAD_TTLS: list[Any] = [0, -1, -0.5, float("nan"), float("inf"), "10", True]

LITERAL_KEYS = [
    "a*",
    "a?",
    "a[bc]",
    "a[!b]",
    "a\\",
    "a\\*",
    "a%",
    "a_",
    "a.b",
    "a{tag}",
    "a|b",
    "a^$",
    "a(b)+",
    "a:b:c",
    "a'--",
    'a"q',
]


def requires(store: DataStore, *capabilities: Capabilities) -> None:
    """Skip the calling test unless ``store`` declares every capability."""
    missing = [c for c in capabilities if c not in store.capabilities]
    if missing:
        names = ", ".join(n for c in missing for n in c.names())
        pytest.skip(f"store does not declare {names}")


def lacks(store: DataStore, capability: Capabilities) -> None:
    """Skip the calling test if ``store`` declares ``capability``."""
    if capability in store.capabilities:
        pytest.skip(f"store declares {capability.names()[0]}")


async def eventually(
    check: Callable[[], Awaitable[bool]], *, timeout: float = EXPIRY_DEADLINE, every: float = 0.05
) -> bool:
    """Poll ``check`` until it returns True or ``timeout`` seconds pass; return the last result."""
    deadline = time.monotonic() + timeout
    while True:
        if await check():
            return True
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(every)


async def _collect(keys: AsyncIterator[str]) -> list[str]:
    return [key async for key in keys]


@pytest.mark.asyncio
class StoreConformance:
    """Behaviour every :class:`~polystore.protocol.DataStore` must show.

    Subclasses provide the ``store`` fixture, and ``sibling_store`` for isolation tests.
    """

    @pytest.fixture
    def sibling_store(self) -> DataStore:
        """Another namespace of the same backend; override to run isolation tests."""
        pytest.skip("override the sibling_store fixture to run namespace-isolation tests")

    # -- round trips ----------------------------------------------------------------------

    @pytest.mark.parametrize("value", JSON_VALUES, ids=repr)
    async def test_every_json_value_round_trips(self, store: DataStore, value: JSONValue) -> None:
        await store.save("k", value)
        entry = await store.get_entry("k")
        assert entry is not None
        assert entry.value == value
        assert type(entry.value) is type(value)

    async def test_unicode_keys_and_values_round_trip(self, store: DataStore) -> None:
        key = "ключ/鍵/🔑/ü"
        value = {"名前": "Zoë 🚀", "emoji": "👩‍👩‍👧", "rtl": "שלום"}
        await store.save(key, value)
        assert await store.get(key) == value

    async def test_nested_documents_round_trip(self, store: DataStore) -> None:
        value: JSONValue = {"level": 0}
        for depth in range(1, 40):
            value = {"level": depth, "child": value, "list": [depth, {"x": [depth]}]}
        await store.save("deep", value)
        assert await store.get("deep") == value

    async def test_one_megabyte_value_round_trips(self, store: DataStore) -> None:
        value: dict[str, JSONValue] = {"blob": "x" * (1024 * 1024), "n": 1}
        await store.save("big", value)
        assert await store.get("big") == value

    async def test_json_looking_string_stays_a_string(self, store: DataStore) -> None:
        value = '{"a": 1, "b": [true, null]}'
        await store.save("s", value)
        assert await store.get("s") == value

    async def test_float_that_looks_integral_keeps_its_value(self, store: DataStore) -> None:
        await store.save("f", {"x": 2.0, "y": -0.5})
        assert await store.get("f") == {"x": 2.0, "y": -0.5}

    async def test_null_value_is_stored_and_distinguishable_from_missing(
        self, store: DataStore
    ) -> None:
        await store.save("null", None)
        entry = await store.get_entry("null")
        assert entry is not None
        assert entry.value is None
        assert await store.exists("null")

    # -- basic verbs --------------------------------------------------------------------

    async def test_missing_key_reads_as_none(self, store: DataStore) -> None:
        assert await store.get("missing") is None
        assert await store.get_entry("missing") is None

    async def test_delete_returns_whether_the_key_existed(self, store: DataStore) -> None:
        await store.save("k", 1)
        assert await store.delete("k") is True
        assert await store.delete("k") is False
        assert await store.get("k") is None

    async def test_exists_follows_saves_and_deletes(self, store: DataStore) -> None:
        assert await store.exists("k") is False
        await store.save("k", "v")
        assert await store.exists("k") is True
        await store.delete("k")
        assert await store.exists("k") is False

    async def test_overwrite_replaces_value(self, store: DataStore) -> None:
        await store.save("k", {"v": 1})
        await store.save("k", {"w": 2})
        assert await store.get("k") == {"w": 2}

    async def test_every_write_returns_a_new_version(self, store: DataStore) -> None:
        first = await store.save("k", 1)
        second = await store.save("k", 1)
        entry = await store.get_entry("k")
        assert first != second
        assert entry is not None
        assert entry.version == second
        assert entry.key == "k"

    async def test_returned_value_is_a_copy(self, store: DataStore) -> None:
        await store.save("k", {"list": [1]})
        got = await store.get("k")
        assert isinstance(got, dict)
        got["list"] = "changed"
        assert await store.get("k") == {"list": [1]}

    async def test_health_reports_ok(self, store: DataStore) -> None:
        health = await store.health()
        assert health.ok is True
        assert health.latency_ms >= 0

    # -- batches ------------------------------------------------------------------------

    async def test_get_many_keeps_order_and_reports_missing_as_none(self, store: DataStore) -> None:
        await store.save_many({"a": 1, "c": 3})
        assert await store.get_many(["c", "b", "a", "c"]) == [3, None, 1, 3]

    async def test_save_many_returns_versions_in_input_order(self, store: DataStore) -> None:
        versions = await store.save_many([("x", 1), ("y", 2)])
        entries = [await store.get_entry("x"), await store.get_entry("y")]
        assert [e.version for e in entries if e is not None] == versions

    @pytest.mark.parametrize("size", [0, 1, 10_000])
    async def test_batches_accept_zero_one_and_ten_thousand_items(
        self, store: DataStore, size: int
    ) -> None:
        items = {f"key-{i:05d}": {"i": i} for i in range(size)}
        versions = await store.save_many(items)
        values = await store.get_many(list(items))
        deleted = await store.delete_many(list(items))
        assert len(versions) == size
        assert values == list(items.values())
        assert deleted == size
        assert await store.get_many(list(items)) == [None] * size

    async def test_delete_many_counts_only_existing_keys(self, store: DataStore) -> None:
        await store.save_many({"a": 1, "b": 2})
        assert await store.delete_many(["a", "b", "missing", "a"]) == 2
        assert await store.get_many(["a", "b"]) == [None, None]

    async def test_save_many_rejects_a_repeated_key_and_writes_nothing(
        self, store: DataStore
    ) -> None:
        with pytest.raises(ValidationError):
            await store.save_many([("a", 1), ("a", 2)])
        assert await store.get("a") is None

    # -- compare-and-set ----------------------------------------------------------------

    async def test_cas_with_the_current_version_succeeds(self, store: DataStore) -> None:
        requires(store, Capabilities.CAS)
        version = await store.save("k", 1)
        new = await store.save("k", 2, if_version=version)
        assert new != version
        entry = await store.get_entry("k")
        assert entry is not None
        assert (entry.value, entry.version) == (2, new)

    async def test_cas_with_a_stale_version_conflicts_and_changes_nothing(
        self, store: DataStore
    ) -> None:
        requires(store, Capabilities.CAS)
        stale = await store.save("k", 1)
        current = await store.save("k", 2)
        with pytest.raises(ConflictError) as info:
            await store.save("k", 3, if_version=stale)
        assert not isinstance(info.value, AlreadyExistsError)
        entry = await store.get_entry("k")
        assert entry is not None
        assert (entry.value, entry.version) == (2, current)

    async def test_cas_on_a_missing_key_conflicts(self, store: DataStore) -> None:
        requires(store, Capabilities.CAS)
        with pytest.raises(ConflictError):
            await store.save("k", 1, if_version=Version("0123456789abcdef"))
        assert await store.get("k") is None

    async def test_delete_with_the_current_version_deletes(self, store: DataStore) -> None:
        requires(store, Capabilities.CAS)
        version = await store.save("k", 1)
        assert await store.delete("k", if_version=version) is True
        assert await store.get("k") is None

    async def test_delete_with_a_stale_version_conflicts_and_keeps_the_key(
        self, store: DataStore
    ) -> None:
        requires(store, Capabilities.CAS)
        stale = await store.save("k", 1)
        await store.save("k", 2)
        with pytest.raises(ConflictError):
            await store.delete("k", if_version=stale)
        assert await store.get("k") == 2

    async def test_create_only_on_an_existing_key_raises_already_exists(
        self, store: DataStore
    ) -> None:
        requires(store, Capabilities.CAS)
        await store.save("k", "first")
        with pytest.raises(AlreadyExistsError):
            await store.save("k", "second", if_absent=True)
        assert await store.get("k") == "first"

    async def test_create_only_on_a_missing_key_writes(self, store: DataStore) -> None:
        requires(store, Capabilities.CAS)
        version = await store.save("k", "v", if_absent=True)
        entry = await store.get_entry("k")
        assert entry is not None
        assert (entry.value, entry.version) == ("v", version)

    async def test_fifty_concurrent_cas_increments_end_at_fifty(self, store: DataStore) -> None:
        requires(store, Capabilities.CAS)
        await store.save("counter", 0)

        async def increment() -> int:
            conflicts = 0
            while True:
                entry = await store.get_entry("counter")
                assert entry is not None
                assert isinstance(entry.value, int)
                try:
                    await store.save("counter", entry.value + 1, if_version=entry.version)
                except ConflictError:
                    conflicts += 1
                    await asyncio.sleep(0)
                else:
                    return conflicts

        await asyncio.gather(*(increment() for _ in range(50)))
        assert await store.get("counter") == 50

    async def test_conditional_writes_are_refused_without_cas(self, store: DataStore) -> None:
        lacks(store, Capabilities.CAS)
        with pytest.raises(UnsupportedOperationError):
            await store.save("k", 1, if_absent=True)

    # -- ttl ----------------------------------------------------------------------------

    async def test_entry_with_ttl_is_readable_before_expiry(self, store: DataStore) -> None:
        requires(store, Capabilities.TTL)
        await store.save("k", "v", ttl=60)
        entry = await store.get_entry("k")
        assert entry is not None
        assert entry.value == "v"
        assert entry.expires_at is not None
        remaining = entry.expires_at.timestamp() - time.time()
        assert 50 < remaining <= 61

    async def test_entry_with_ttl_is_gone_after_expiry(self, store: DataStore) -> None:
        requires(store, Capabilities.TTL)
        await store.save("k", "v", ttl=TTL_SHORT)

        async def gone() -> bool:
            return await store.get("k") is None

        assert await eventually(gone)
        assert await store.exists("k") is False
        assert await store.get_entry("k") is None

    async def test_overwrite_without_ttl_removes_the_expiry(self, store: DataStore) -> None:
        requires(store, Capabilities.TTL)
        await store.save("k", "short", ttl=TTL_SHORT)
        await store.save("k", "forever")
        entry = await store.get_entry("k")
        assert entry is not None
        assert entry.expires_at is None
        await asyncio.sleep(TTL_SHORT * 3)
        assert await store.get("k") == "forever"

    async def test_expired_entries_are_not_returned_by_any_read(self, store: DataStore) -> None:
        requires(store, Capabilities.TTL)
        await store.save_many({"live-1": {"kind": "x"}, "live-2": {"kind": "x"}})
        await store.save_many({"dead-1": {"kind": "x"}, "dead-2": {"kind": "x"}}, ttl=TTL_SHORT)

        async def expired() -> bool:
            return await store.get_many(["dead-1", "dead-2"]) == [None, None]

        assert await eventually(expired)
        assert await store.get_many(["live-1", "dead-1"]) == [{"kind": "x"}, None]
        if Capabilities.SCAN in store.capabilities:
            assert sorted(await _collect(store.scan())) == ["live-1", "live-2"]
        if Capabilities.QUERY in store.capabilities:
            found = await store.find({"kind": "x"})
            assert [e.key for e in found] == ["live-1", "live-2"]

    async def test_create_only_succeeds_over_an_expired_entry(self, store: DataStore) -> None:
        requires(store, Capabilities.TTL, Capabilities.CAS)
        await store.save("k", "old", ttl=TTL_SHORT)

        async def gone() -> bool:
            return await store.get("k") is None

        assert await eventually(gone)
        await store.save("k", "new", if_absent=True)
        assert await store.get("k") == "new"

    async def test_ttl_is_refused_without_the_ttl_capability(self, store: DataStore) -> None:
        lacks(store, Capabilities.TTL)
        with pytest.raises(UnsupportedOperationError):
            await store.save("k", 1, ttl=10)

    # -- scan ---------------------------------------------------------------------------

    async def test_scan_lists_keys_with_the_prefix(self, store: DataStore) -> None:
        requires(store, Capabilities.SCAN)
        await store.save_many({"user:1": 1, "user:2": 2, "users": 3, "order:1": 4})
        assert sorted(await _collect(store.scan(prefix="user:"))) == ["user:1", "user:2"]
        assert sorted(await _collect(store.scan())) == ["order:1", "user:1", "user:2", "users"]

    async def test_scan_takes_metacharacters_literally(self, store: DataStore) -> None:
        requires(store, Capabilities.SCAN)
        decoys = ["ab", "a", "abc", "a\\b", "axb", "a[b", "aXX", "a%x", "a_x", "a(b)++"]
        every = [*LITERAL_KEYS, *decoys]
        await store.save_many({key: key for key in every})
        for prefix in LITERAL_KEYS:
            found = sorted(await _collect(store.scan(prefix=prefix)))
            expected = sorted(k for k in every if k.startswith(prefix))
            assert found == expected, f"prefix {prefix!r} matched {found!r}"

    async def test_scan_streams_ten_thousand_keys(self, store: DataStore) -> None:
        requires(store, Capabilities.SCAN)
        await store.save_many({f"item:{i:05d}": i for i in range(10_000)})
        seen: set[str] = set()
        async for key in store.scan(prefix="item:", batch_size=1000):
            seen.add(key)
        assert seen == {f"item:{i:05d}" for i in range(10_000)}

    async def test_scan_is_refused_without_the_scan_capability(self, store: DataStore) -> None:
        lacks(store, Capabilities.SCAN)
        with pytest.raises(UnsupportedOperationError):
            store.scan()

    # -- find ---------------------------------------------------------------------------

    async def test_find_matches_equal_top_level_fields(self, store: DataStore) -> None:
        requires(store, Capabilities.QUERY)
        await store.save_many(
            {
                "u1": {"city": "Oslo", "age": 30, "active": True},
                "u2": {"city": "Oslo", "age": 41, "active": False},
                "u3": {"city": "Rome", "age": 30, "active": True},
                "u4": ["not", "an", "object"],
                "u5": "Oslo",
            }
        )
        found = await store.find({"city": "Oslo"})
        assert [e.key for e in found] == ["u1", "u2"]
        assert found[0].value == {"city": "Oslo", "age": 30, "active": True}
        both = await store.find({"city": "Oslo", "age": 30})
        assert [e.key for e in both] == ["u1"]

    async def test_find_keeps_types_apart(self, store: DataStore) -> None:
        requires(store, Capabilities.QUERY)
        await store.save_many(
            {
                "bool": {"f": True},
                "one": {"f": 1},
                "one-float": {"f": 1.0},
                "string": {"f": "1"},
                "null": {"f": None},
                "absent": {"g": 1},
            }
        )
        assert [e.key for e in await store.find({"f": True})] == ["bool"]
        assert [e.key for e in await store.find({"f": 1})] == ["one", "one-float"]
        assert [e.key for e in await store.find({"f": "1"})] == ["string"]
        assert [e.key for e in await store.find({"f": None})] == ["null"]

    async def test_find_honours_the_limit(self, store: DataStore) -> None:
        requires(store, Capabilities.QUERY)
        await store.save_many({f"k{i}": {"t": "x"} for i in range(5)})
        assert len(await store.find({"t": "x"}, limit=2)) == 2

    @pytest.mark.parametrize(
        "where",
        [
            {"f": {"$ne": None}},
            {"f": {"$gt": 0}},
            {"$where": "1"},
            {"$or": [{"a": 1}]},
            {"f": [1, 2]},
            {"a.b": 1},
            {"f": float("nan")},
            {"": 1},
            {1: 1},
        ],
        ids=repr,
    )
    async def test_find_rejects_operators_and_non_scalars(
        self, store: DataStore, where: Any
    ) -> None:
        requires(store, Capabilities.QUERY)
        await store.save("k", {"f": 1, "a": 1})
        with pytest.raises(ValidationError):
            await store.find(where)

    async def test_find_is_refused_without_the_query_capability(self, store: DataStore) -> None:
        lacks(store, Capabilities.QUERY)
        with pytest.raises(UnsupportedOperationError):
            await store.find({"a": 1})

    # -- transactions -------------------------------------------------------------------

    async def test_transaction_commits_all_writes(self, store: DataStore) -> None:
        requires(store, Capabilities.TRANSACTIONS)
        await store.save("gone", 0)
        async with store.transaction() as tx:
            await tx.save("a", 1)
            await tx.save("b", 2)
            await tx.delete("gone")
        assert await store.get_many(["a", "b", "gone"]) == [1, 2, None]

    async def test_transaction_rolls_back_on_exception(self, store: DataStore) -> None:
        requires(store, Capabilities.TRANSACTIONS)
        await store.save("a", "before")
        with pytest.raises(RuntimeError, match="boom"):
            async with store.transaction() as tx:
                await tx.save("a", "during")
                await tx.save("b", "during")
                raise RuntimeError("boom")
        assert await store.get_many(["a", "b"]) == ["before", None]

    async def test_transaction_writes_are_invisible_before_commit(self, store: DataStore) -> None:
        requires(store, Capabilities.TRANSACTIONS)
        await store.save("a", "before")
        async with store.transaction() as tx:
            await tx.save("a", "during")
            await tx.save("new", 1)
            assert await store.get("a") == "before"
            assert await store.get("new") is None
            assert await tx.get("a") == "during"
        assert await store.get_many(["a", "new"]) == ["during", 1]

    async def test_transaction_with_a_stale_version_applies_nothing(self, store: DataStore) -> None:
        requires(store, Capabilities.TRANSACTIONS, Capabilities.CAS)
        stale = await store.save("a", 1)
        await store.save("a", 2)
        with pytest.raises(ConflictError):
            async with store.transaction() as tx:
                await tx.save("b", "written")
                await tx.save("a", 3, if_version=stale)
        assert await store.get_many(["a", "b"]) == [2, None]

    async def test_transactions_are_refused_without_the_capability(self, store: DataStore) -> None:
        lacks(store, Capabilities.TRANSACTIONS)
        with pytest.raises(UnsupportedOperationError):
            store.transaction()

    # -- namespaces ---------------------------------------------------------------------

    async def test_namespaces_do_not_see_each_others_keys(
        self, store: DataStore, sibling_store: DataStore
    ) -> None:
        await store.save("shared-name", "mine")
        assert await sibling_store.get("shared-name") is None
        assert await sibling_store.exists("shared-name") is False
        await sibling_store.save("shared-name", "theirs")
        assert await store.get("shared-name") == "mine"
        assert await sibling_store.delete_many(["shared-name"]) == 1
        assert await store.get("shared-name") == "mine"

    async def test_scan_stays_inside_the_namespace(
        self, store: DataStore, sibling_store: DataStore
    ) -> None:
        requires(store, Capabilities.SCAN)
        await store.save_many({"mine:1": 1, "mine:2": 2})
        await sibling_store.save_many({"theirs:1": 1, "mine:3": 3})
        assert sorted(await _collect(store.scan())) == ["mine:1", "mine:2"]
        assert sorted(await _collect(sibling_store.scan(prefix="mine"))) == ["mine:3"]

    # -- validation ---------------------------------------------------------------------

    @pytest.mark.parametrize("key", BAD_KEYS, ids=repr)
    async def test_bad_keys_are_rejected_by_every_method(self, store: DataStore, key: Any) -> None:
        calls: list[Callable[[], Awaitable[object]]] = [
            lambda: store.get(key),
            lambda: store.get_entry(key),
            lambda: store.save(key, 1),
            lambda: store.delete(key),
            lambda: store.exists(key),
            lambda: store.get_many(["ok", key]),
            lambda: store.save_many([("ok", 1), (key, 1)]),
            lambda: store.delete_many(["ok", key]),
        ]
        for call in calls:
            with pytest.raises(ValidationError):
                await call()
        assert await store.get("ok") is None

    @pytest.mark.parametrize("ttl", BAD_TTLS, ids=repr)
    async def test_bad_ttls_are_rejected(self, store: DataStore, ttl: Any) -> None:
        with pytest.raises(ValidationError):
            await store.save("k", 1, ttl=ttl)
        with pytest.raises(ValidationError):
            await store.save_many({"k": 1}, ttl=ttl)
        assert await store.get("k") is None

    async def test_if_version_with_if_absent_is_rejected(self, store: DataStore) -> None:
        with pytest.raises(ValidationError):
            await store.save("k", 1, if_version=Version("abc"), if_absent=True)
        assert await store.get("k") is None

    @pytest.mark.parametrize(
        "value",
        [{1: "int key"}, {"f": float("nan")}, [float("inf")], {"s": {1, 2}}, b"bytes", object()],
        ids=repr,
    )
    async def test_values_json_cannot_hold_are_rejected(self, store: DataStore, value: Any) -> None:
        with pytest.raises(SerializationError):
            await store.save("k", value)
        with pytest.raises(SerializationError):
            await store.save_many({"ok": 1, "k": value})
        assert await store.get_many(["k", "ok"]) == [None, None]

    async def test_a_bad_scan_prefix_is_rejected_at_the_call(self, store: DataStore) -> None:
        with pytest.raises(ValidationError):
            store.scan(prefix="a\x00")
        with pytest.raises(ValidationError):
            store.scan(batch_size=0)
