"""Round trips, basic verbs and batches."""

from __future__ import annotations

from typing import Any

import pytest

from polystore.errors import (
    SerializationError,
    ValidationError,
)
from polystore.protocol import DataStore
from polystore.testing.conformance._support import (
    JSON_VALUES,
    NOT_JSON_VALUES,
    OTHER_MAPPINGS_AND_SEQUENCES,
    Level,
    requires,
)
from polystore.types import Capabilities, JSONValue


class ValueTests:
    """Part of :class:`~polystore.testing.StoreConformance`."""

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

    # -- one rule for values JSON cannot hold -------------------------------------------

    @pytest.mark.parametrize("value", NOT_JSON_VALUES, ids=repr)
    async def test_values_json_cannot_hold_are_refused_before_any_write(
        self, store: DataStore, value: Any
    ) -> None:
        with pytest.raises(SerializationError):
            await store.save("k", value)
        with pytest.raises(SerializationError):
            await store.save_many({"fine": 1, "k": value})
        assert await store.get_many(["fine", "k"]) == [None, None]

    @pytest.mark.parametrize("value", NOT_JSON_VALUES, ids=repr)
    async def test_values_json_cannot_hold_are_refused_in_transactions(
        self, store: DataStore, value: Any
    ) -> None:
        requires(store, Capabilities.TRANSACTIONS)
        with pytest.raises(SerializationError):
            async with store.transaction() as tx:
                await tx.save("fine", 1)
                await tx.save("k", value)
        assert await store.get_many(["fine", "k"]) == [None, None]

    @pytest.mark.parametrize(("value", "expected"), OTHER_MAPPINGS_AND_SEQUENCES, ids=repr)
    async def test_any_mapping_or_sequence_is_stored_as_a_plain_object_or_array(
        self, store: DataStore, value: Any, expected: JSONValue
    ) -> None:
        await store.save("one", value)
        await store.save_many({"batch": value})
        for key in ("one", "batch"):
            entry = await store.get_entry(key)
            assert entry is not None
            assert entry.value == expected
            assert type(entry.value) is type(expected)

    async def test_int_enum_members_are_stored_as_plain_ints(self, store: DataStore) -> None:
        await store.save("level", {"level": Level.HIGH, "levels": [Level.LOW]})
        stored = await store.get("level")
        assert stored == {"level": 3, "levels": [1]}
        assert isinstance(stored, dict)
        assert type(stored["level"]) is int

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
