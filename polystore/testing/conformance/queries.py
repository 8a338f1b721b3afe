"""Scan and find."""

from __future__ import annotations

from typing import Any

import pytest

from polystore.errors import (
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
