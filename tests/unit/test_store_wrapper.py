"""StoreWrapper: every protocol call passes through one interception point."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TypeVar

import pytest
import pytest_asyncio

from polystore import Capabilities, DataStore, StoreWrapper
from polystore.backends.memory import MemoryBackend, MemorySettings

T = TypeVar("T")


class Recording(StoreWrapper):
    def __init__(self, store: DataStore) -> None:
        super().__init__(store)
        self.calls: list[tuple[str, int]] = []
        self.guarded: list[str] = []

    async def _call(self, operation: str, call: Callable[[], Awaitable[T]], *, keys: int = 1) -> T:
        self.calls.append((operation, keys))
        return await call()

    @asynccontextmanager
    async def _guard(self, operation: str) -> AsyncIterator[None]:
        self.guarded.append(operation)
        yield


@pytest_asyncio.fixture
async def wrapped() -> AsyncIterator[Recording]:
    backend = MemoryBackend(MemorySettings())
    async with backend:
        yield Recording(backend.namespace("things"))


@pytest.mark.asyncio
async def test_every_awaited_call_goes_through_call_with_its_key_count(wrapped: Recording) -> None:
    version = await wrapped.save("a", {"n": 1})
    await wrapped.get("a")
    await wrapped.get_entry("a")
    await wrapped.exists("a")
    await wrapped.save_many((k, {"n": 2}) for k in ("b", "c"))  # a generator is counted too
    assert await wrapped.get_many(["a", "b", "c"]) == [{"n": 1}, {"n": 2}, {"n": 2}]
    await wrapped.find({"n": 2})
    await wrapped.delete_many(["b", "c"])
    assert await wrapped.delete("a", if_version=version) is True
    assert wrapped.calls == [
        ("save", 1),
        ("get", 1),
        ("get_entry", 1),
        ("exists", 1),
        ("save_many", 2),
        ("get_many", 3),
        ("find", 0),
        ("delete_many", 2),
        ("delete", 1),
    ]


@pytest.mark.asyncio
async def test_scan_and_transaction_go_through_guard(wrapped: Recording) -> None:
    async with wrapped.transaction() as tx:
        await tx.save("k1", 1)
    assert [key async for key in wrapped.scan(prefix="k")] == ["k1"]
    assert wrapped.guarded == ["transaction", "scan"]
    assert wrapped.calls == []


@pytest.mark.asyncio
async def test_name_capabilities_health_and_extras_read_through(wrapped: Recording) -> None:
    assert wrapped.name == wrapped.store.name == "memory/things"
    assert Capabilities.TTL in wrapped.capabilities
    assert (await wrapped.health()).ok
    assert wrapped.calls == []
    assert wrapped.max_value_bytes == wrapped.store.max_value_bytes  # type: ignore[attr-defined]
    assert isinstance(wrapped, DataStore)


@pytest.mark.asyncio
async def test_wrappers_stack(wrapped: Recording) -> None:
    outer = Recording(wrapped)
    await outer.get("missing")
    assert outer.calls == wrapped.calls == [("get", 1)]
