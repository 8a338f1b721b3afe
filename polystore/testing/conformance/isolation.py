"""Transactions, namespaces and input validation."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from polystore.errors import (
    ConflictError,
    SerializationError,
    UnsupportedOperationError,
    ValidationError,
)
from polystore.protocol import DataStore
from polystore.testing.conformance._support import (
    BAD_KEYS,
    BAD_TTLS,
    collect,
    lacks,
    requires,
)
from polystore.types import Capabilities, Version


class IsolationTests:
    """Part of :class:`~polystore.testing.StoreConformance`."""

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
        assert sorted(await collect(store.scan())) == ["mine:1", "mine:2"]
        assert sorted(await collect(sibling_store.scan(prefix="mine"))) == ["mine:3"]

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
