"""Coalescing of concurrent single-key calls (polystore.coalesce) on the SQLite store and
on a store whose batches the test holds back."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from polystore.backends.sqlite import SqliteBackend, SqliteSettings
from polystore.backends.sqlite_store import SqliteStore
from polystore.base import BaseStore, new_version
from polystore.coalesce import ReadResult, WriteOp, WriteResult
from polystore.errors import (
    ConflictError,
    StoreTimeoutError,
    StoreUnavailableError,
    UnknownOutcomeError,
    UnsupportedOperationError,
)
from polystore.types import Capabilities, Entry, Health, JSONValue, Version

pytestmark = pytest.mark.asyncio


@pytest_asyncio.fixture
async def backend(tmp_path: Path) -> AsyncIterator[SqliteBackend]:
    settings = SqliteSettings(path=str(tmp_path / "db.sqlite"), synchronous="NORMAL")
    async with SqliteBackend(settings) as backend:
        yield backend


@pytest_asyncio.fixture
async def store(backend: SqliteBackend) -> SqliteStore:
    store = backend.namespace("c")
    assert isinstance(store, SqliteStore)
    return store


async def test_sqlite_coalesces_by_default(store: SqliteStore) -> None:
    assert store.coalescing


async def test_a_lone_call_goes_straight_through(store: SqliteStore) -> None:
    for i in range(5):
        await store.save(f"k{i}", i)
        assert await store.get(f"k{i}") == i
    assert store.coalesce_stats.batches == 0
    assert store.coalesce_stats.direct_calls == 10


async def test_concurrent_gets_go_out_as_batches(store: SqliteStore) -> None:
    await store.save_many({f"k{i}": i for i in range(32)})
    values = await asyncio.gather(*(store.get(f"k{i}") for i in range(32)))
    stats = store.coalesce_stats
    assert values == list(range(32))
    assert stats.batches >= 1
    assert stats.batched_calls + stats.direct_calls == 32
    assert stats.mean_batch_size > 4


async def test_concurrent_saves_share_one_commit_and_keep_their_versions(
    store: SqliteStore,
) -> None:
    versions = await asyncio.gather(*(store.save(f"k{i}", i) for i in range(32)))
    entries = await store.get_many([f"k{i}" for i in range(32)])
    assert entries == list(range(32))
    for i, version in enumerate(versions):
        entry = await store.get_entry(f"k{i}")
        assert entry is not None
        assert entry.version == version
    assert store.coalesce_stats.batched_calls >= 16


async def test_batches_never_exceed_the_size_cap(backend: SqliteBackend) -> None:
    backend.settings.coalesce_max_batch = 4
    store = backend.namespace("capped")
    assert isinstance(store, SqliteStore)
    await asyncio.gather(*(store.get(f"k{i}") for i in range(33)))
    stats = store.coalesce_stats
    assert stats.batched_calls == 32
    assert stats.batches >= 8
    assert stats.mean_batch_size <= 4


async def test_a_conflict_in_a_batch_fails_only_its_own_caller(store: SqliteStore) -> None:
    await store.save("cas", "old")
    results = await asyncio.gather(
        store.save("a", 1),
        store.save("cas", "new", if_version=Version("not-the-version")),
        store.save("b", 2),
        return_exceptions=True,
    )
    assert isinstance(results[1], ConflictError)
    assert results[1].key == "cas"
    assert isinstance(results[0], str)
    assert isinstance(results[2], str)
    assert await store.get_many(["a", "cas", "b"]) == [1, "old", 2]
    assert store.coalesce_stats.batched_calls == 2


async def test_two_writes_to_one_key_in_a_batch_apply_in_call_order(store: SqliteStore) -> None:
    _, _, second = await asyncio.gather(
        store.save("other", 0), store.save("k", 1), store.save("k", 2)
    )
    entry = await store.get_entry("k")
    assert entry is not None
    assert (entry.value, entry.version) == (2, second)
    assert store.coalesce_stats.batched_calls == 2


async def test_a_transaction_holder_writing_through_the_store_is_refused_not_stuck(
    store: SqliteStore,
) -> None:
    async with store.transaction() as tx:
        await tx.save("t", 1)
        waiting = asyncio.ensure_future(store.save("o", 1))  # waits for the write lock
        await asyncio.sleep(0.05)
        with pytest.raises(UnsupportedOperationError):
            await store.save("x", 1)
    await waiting
    assert await store.get_many(["t", "o", "x"]) == [1, 1, None]


async def test_coalescing_can_be_turned_off(tmp_path: Path) -> None:
    settings = SqliteSettings(path=str(tmp_path / "off.sqlite"), coalesce=False)
    async with SqliteBackend(settings) as backend:
        store = backend.namespace("off")
        assert isinstance(store, SqliteStore)
        await asyncio.gather(*(store.save(f"k{i}", i) for i in range(8)))
        assert not store.coalescing
        assert store.coalesce_stats.batches == 0


class HeldStore(BaseStore):
    """A dict behind the batch primitives; batches wait until the test releases them."""

    def __init__(self, *, timeout: float | None = None, fail: bool = False) -> None:
        super().__init__(
            "held/ns", Capabilities.CAS, timeout=timeout, coalesce=True, coalesce_max_batch=64
        )
        self.data: dict[str, tuple[JSONValue, Version]] = {}
        self.release = asyncio.Event()
        self.fail = fail
        self.direct_started = asyncio.Event()

    async def _get_entry(self, key: str) -> Entry | None:
        self.direct_started.set()
        await self.release.wait()
        found = self.data.get(key)
        return None if found is None else Entry(key, found[0], found[1], None)

    async def _save(
        self,
        key: str,
        value: JSONValue,
        data: bytes,
        ttl: float | None,
        if_version: Version | None,
        if_absent: bool,
    ) -> Version:
        self.direct_started.set()
        await self.release.wait()
        version = new_version()
        self.data[key] = (value, version)
        return version

    async def _delete(self, key: str, if_version: Version | None) -> bool:
        return self.data.pop(key, None) is not None

    async def _get_entries_batch(self, keys: list[str]) -> list[ReadResult]:
        await self.release.wait()
        if self.fail:
            raise StoreUnavailableError("connection reset", backend=self.name)
        return [await self._get_entry(key) for key in keys]

    async def _write_batch(self, ops: list[WriteOp]) -> list[WriteResult]:
        await self.release.wait()
        if self.fail:
            raise UnknownOutcomeError("connection lost after sending", backend=self.name)
        results: list[WriteResult] = []
        for op in ops:
            assert op.data is not None
            results.append(await self._save(op.key, op.value, op.data, None, None, False))
        return results

    async def _get_many(self, keys: list[str]) -> list[JSONValue | None]:
        raise NotImplementedError

    async def _save_many(
        self, items: list[tuple[str, JSONValue, bytes]], ttl: float | None
    ) -> list[Version]:
        raise NotImplementedError

    async def _delete_many(self, keys: list[str]) -> int:
        raise NotImplementedError

    async def _health(self) -> Health:
        return Health(ok=True, backend=self.name, latency_ms=0.0)


async def _start(store: HeldStore, count: int) -> list[asyncio.Task[Version]]:
    """One direct save in flight, then ``count`` saves waiting in a batch."""
    first = asyncio.ensure_future(store.save("first", 0))
    await store.direct_started.wait()
    tasks = [asyncio.ensure_future(store.save(f"k{i}", i)) for i in range(count)]
    await asyncio.sleep(0)
    return [first, *tasks]


async def test_a_cancelled_caller_does_not_cancel_the_batch() -> None:
    store = HeldStore()
    first, victim, *others = await _start(store, 5)
    await asyncio.sleep(0)
    victim.cancel()
    store.release.set()
    await asyncio.gather(first, *others)
    with pytest.raises(asyncio.CancelledError):
        await victim
    assert {key: value for key, (value, _) in store.data.items()} == {
        "first": 0,
        **{f"k{i}": i for i in range(5)},
    }


async def test_a_failed_write_batch_fails_each_caller_with_its_own_typed_error() -> None:
    store = HeldStore(fail=True)
    first, *batched = await _start(store, 3)
    store.release.set()
    await first
    errors = await asyncio.gather(*batched, return_exceptions=True)
    assert all(isinstance(error, UnknownOutcomeError) for error in errors)
    assert [error.key for error in errors if isinstance(error, UnknownOutcomeError)] == [
        "k0",
        "k1",
        "k2",
    ]
    assert len({id(error) for error in errors}) == 3


async def test_a_failed_read_batch_fails_each_reader_as_unavailable() -> None:
    store = HeldStore(fail=True)
    first = asyncio.ensure_future(store.get("first"))
    await store.direct_started.wait()
    readers = [asyncio.ensure_future(store.get(f"k{i}")) for i in range(3)]
    await asyncio.sleep(0)
    store.release.set()
    await first
    errors = await asyncio.gather(*readers, return_exceptions=True)
    assert [type(error) for error in errors] == [StoreUnavailableError] * 3


async def test_the_timeout_bounds_each_caller_while_its_batch_hangs() -> None:
    store = HeldStore(timeout=0.2)
    first = asyncio.ensure_future(store.get("first"))
    await store.direct_started.wait()
    write = asyncio.ensure_future(store.save("w", 1))
    read = asyncio.ensure_future(store.get("r"))
    done, _ = await asyncio.wait([first, write, read], timeout=5)
    assert len(done) == 3
    assert isinstance(write.exception(), UnknownOutcomeError)
    assert isinstance(read.exception(), StoreTimeoutError)
    assert isinstance(first.exception(), StoreTimeoutError)
