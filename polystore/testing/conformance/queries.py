"""Scan and find."""

from __future__ import annotations

from typing import Any

import pytest

from polystore.errors import (
    SerializationError,
    UnsupportedOperationError,
    ValidationError,
)
from polystore.protocol import DataStore
from polystore.testing.conformance._support import (
    LITERAL_KEYS,
    collect,
    lacks,
    requires,
)
from polystore.types import Capabilities


class QueryTests:
    """Part of :class:`~polystore.testing.StoreConformance`."""

    # -- scan ---------------------------------------------------------------------------

    async def test_scan_lists_keys_with_the_prefix(self, store: DataStore) -> None:
        requires(store, Capabilities.SCAN)
        await store.save_many({"user:1": 1, "user:2": 2, "users": 3, "order:1": 4})
        assert sorted(await collect(store.scan(prefix="user:"))) == ["user:1", "user:2"]
        assert sorted(await collect(store.scan())) == ["order:1", "user:1", "user:2", "users"]

    async def test_scan_takes_metacharacters_literally(self, store: DataStore) -> None:
        requires(store, Capabilities.SCAN)
        decoys = ["ab", "a", "abc", "a\\b", "axb", "a[b", "aXX", "a%x", "a_x", "a(b)++"]
        every = [*LITERAL_KEYS, *decoys]
        await store.save_many({key: key for key in every})
        for prefix in LITERAL_KEYS:
            found = sorted(await collect(store.scan(prefix=prefix)))
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

    async def test_find_applies_the_limit_to_real_matches_only(self, store: DataStore) -> None:
        requires(store, Capabilities.QUERY)
        await store.save_many(
            {
                "k0": {"s": "a\x00b"},
                "k1": {"s": "a\x00"},
                "k2": {"s": "A"},
                "k3": {"s": "a "},
                "k4": {"s": ["a"]},
                "k5": {"s": "a"},
                "k6": {"s": "a"},
            }
        )
        found = await store.find({"s": "a"}, limit=1)
        assert [e.key for e in found] == ["k5"]
        assert [e.key for e in await store.find({"s": "a"}, limit=5)] == ["k5", "k6"]

    async def test_find_matches_strings_holding_nul_exactly(self, store: DataStore) -> None:
        requires(store, Capabilities.QUERY)
        await store.save_many({"nul": {"s": "a\x00b"}, "cut": {"s": "a"}, "other": {"s": "a\x00c"}})
        assert [e.key for e in await store.find({"s": "a\x00b"})] == ["nul"]
        assert [e.key for e in await store.find({"s": "a"})] == ["cut"]
        assert [e.key for e in await store.find({"s": "\x00"})] == []

    @pytest.mark.parametrize("number", [2**63, 2**64, -(2**63) - 1, 10**30], ids=repr)
    async def test_find_with_an_integer_beyond_64_bits_is_refused_or_answered_exactly(
        self, store: DataStore, number: int
    ) -> None:
        requires(store, Capabilities.QUERY)
        stored: dict[str, int | float] = {
            "f63": 2.0**63,
            "f64": 2.0**64,
            "max": 2**63 - 1,
            "min": -(2**63),
            "f-63": -(2.0**63),
            "f1e19": 1e19,
        }
        await store.save_many({key: {"n": n} for key, n in stored.items()})
        try:
            await store.save("big", {"n": number})
            stored["big"] = number
        except SerializationError:
            pass  # the store cannot hold it
        expected = sorted(key for key, n in stored.items() if n == number)
        try:
            found = await store.find({"n": number})
        except ValidationError:
            return
        assert [e.key for e in found] == expected

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
