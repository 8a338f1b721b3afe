"""Compare-and-set, create-only and expiry."""

from __future__ import annotations

import asyncio
import time

import pytest

from polystore.errors import (
    AlreadyExistsError,
    ConflictError,
    UnsupportedOperationError,
)
from polystore.protocol import DataStore
from polystore.testing.conformance._support import (
    TTL_SHORT,
    collect,
    eventually,
    lacks,
    requires,
)
from polystore.types import Capabilities, Version


class ConditionTests:
    """Part of :class:`~polystore.testing.StoreConformance`."""

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
            assert sorted(await collect(store.scan())) == ["live-1", "live-2"]
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
