"""One timeout for the whole call: deadlines, retries within the budget, typed errors.

The store here is a minimal BaseStore whose steps sleep or fail on demand, to check the
timing logic of the base class alone; the server backends are checked against real
killed and frozen servers in tests/faults.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import pytest

from polystore import (
    BaseBackend,
    BaseStore,
    BaseTransaction,
    Capabilities,
    DataStoreTransaction,
    Entry,
    Health,
    JSONValue,
    RetryPolicy,
    StoreTimeoutError,
    StoreUnavailableError,
    UnknownOutcomeError,
    Version,
)
from polystore.deadlines import budget, current_deadline, remaining

pytestmark = pytest.mark.asyncio

SLACK = 0.3


class _Steps(BaseStore):
    """Each read sleeps ``delay`` seconds, then fails while ``failures`` is positive."""

    def __init__(self, *, timeout: float | None, retry: RetryPolicy | None = None) -> None:
        super().__init__(
            "steps/ns",
            Capabilities.SCAN | Capabilities.CAS | Capabilities.TRANSACTIONS,
            retry=retry,
            timeout=timeout,
        )
        self.begin_delay = 0.0
        self.end_delay = 0.0
        self.delay = 0.0
        self.failures = 0
        self.attempts = 0

    async def _get_entry(self, key: str) -> Entry | None:
        self.attempts += 1
        await asyncio.sleep(self.delay)
        if self.failures:
            self.failures -= 1
            raise StoreUnavailableError("refused", backend=self.name)
        return Entry(key, 1, Version("v"), None)

    async def _save(
        self,
        key: str,
        value: JSONValue,
        data: bytes,
        ttl: float | None,
        if_version: Version | None,
        if_absent: bool,
    ) -> Version:
        await asyncio.sleep(self.delay)
        return Version("v")

    async def _delete(self, key: str, if_version: Version | None) -> bool:
        await asyncio.sleep(self.delay)
        return True

    async def _get_many(self, keys: list[str]) -> list[JSONValue | None]:
        await asyncio.sleep(self.delay)
        return [None for _ in keys]

    async def _save_many(
        self, items: list[tuple[str, JSONValue, bytes]], ttl: float | None
    ) -> list[Version]:
        await asyncio.sleep(self.delay)
        return [Version("v") for _ in items]

    async def _delete_many(self, keys: list[str]) -> int:
        await asyncio.sleep(self.delay)
        return 0

    async def _scan(self, prefix: str, batch_size: int) -> AsyncIterator[str]:
        await asyncio.sleep(self.delay)
        yield "a"
        yield "b"

    async def _health(self) -> Health:
        return Health(ok=True, backend=self.name, latency_ms=0.0)

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[DataStoreTransaction]:
        await asyncio.sleep(self.begin_delay)
        try:
            yield _NoTransaction(self)
        finally:
            await asyncio.sleep(self.end_delay)  # the commit, or the rollback


class _NoTransaction(BaseTransaction):
    async def _get_entry(self, key: str) -> Entry | None:
        return None

    async def _save(
        self,
        key: str,
        value: JSONValue,
        data: bytes,
        ttl: float | None,
        if_version: Version | None,
        if_absent: bool,
    ) -> Version:
        return Version("v")

    async def _delete(self, key: str, if_version: Version | None) -> bool:
        return False


@dataclass(frozen=True)
class _FixedDelay(RetryPolicy):
    pause: float = 0.0

    def delay(self, retry_number: int) -> float:
        return self.pause


async def _elapsed(work: object) -> float:
    started = time.monotonic()
    await work  # type: ignore[misc]
    return time.monotonic() - started


async def test_a_read_still_running_at_the_deadline_raises_store_timeout_error() -> None:
    store = _Steps(timeout=0.2)
    store.delay = 5.0
    started = time.monotonic()
    with pytest.raises(StoreTimeoutError) as info:
        await store.get("k")
    assert 0.19 <= time.monotonic() - started < 0.2 + SLACK
    assert info.value.operation == "get"
    assert info.value.key == "k"


async def test_a_write_still_running_at_the_deadline_has_an_unknown_outcome() -> None:
    store = _Steps(timeout=0.2)
    store.delay = 5.0
    for write in (store.save("k", 1), store.delete("k"), store.save_many({"k": 1})):
        started = time.monotonic()
        with pytest.raises(UnknownOutcomeError):
            await write
        assert time.monotonic() - started < 0.2 + SLACK


async def test_retries_spend_what_is_left_of_the_timeout_never_more() -> None:
    store = _Steps(timeout=0.5, retry=_FixedDelay(attempts=100, pause=0.01))
    store.delay = 0.05
    store.failures = 1000
    started = time.monotonic()
    with pytest.raises(StoreUnavailableError):
        await store.get("k")
    assert time.monotonic() - started < 0.5 + SLACK
    assert 3 <= store.attempts < 100


async def test_a_retry_whose_back_off_would_pass_the_deadline_is_not_made() -> None:
    store = _Steps(timeout=0.3, retry=_FixedDelay(attempts=3, pause=1.0))
    store.failures = 1
    started = time.monotonic()
    with pytest.raises(StoreUnavailableError) as info:
        await store.get("k")
    assert time.monotonic() - started < 0.1
    assert store.attempts == 1
    assert not isinstance(info.value, StoreTimeoutError)  # the real cause, not a timeout


async def test_a_retry_that_fits_in_the_budget_is_made() -> None:
    store = _Steps(timeout=2.0, retry=_FixedDelay(attempts=3, pause=0.01))
    store.failures = 2
    assert await store.get("k") == 1
    assert store.attempts == 3


async def test_the_first_key_of_a_scan_comes_within_the_timeout() -> None:
    store = _Steps(timeout=0.2)
    store.delay = 5.0
    started = time.monotonic()
    with pytest.raises(StoreTimeoutError):
        async for _ in store.scan():
            pass
    assert time.monotonic() - started < 0.2 + SLACK


async def test_a_scan_that_answers_in_time_yields_every_key() -> None:
    store = _Steps(timeout=1.0)
    assert [key async for key in store.scan()] == ["a", "b"]


async def test_a_store_without_a_timeout_leaves_calls_unbounded() -> None:
    store = _Steps(timeout=None)
    store.delay = 0.3
    assert await store.get("k") == 1
    assert store.call_timeout is None


async def test_inside_a_call_steps_are_told_what_is_left_of_its_budget() -> None:
    seen: list[float | None] = []

    class _Watching(_Steps):
        async def _get_entry(self, key: str) -> Entry | None:
            seen.append(current_deadline())
            seen.append(remaining(100.0))
            return await super()._get_entry(key)

    store = _Watching(timeout=0.5)
    before = time.monotonic()
    await store.get("k")
    deadline, left = seen
    assert deadline is not None
    assert before + 0.4 < deadline <= time.monotonic() + 0.5
    assert left is not None
    assert 0.3 < left < 0.5
    assert current_deadline() is None  # the budget ends with the call


async def test_an_inner_budget_never_gets_more_than_the_outer_has_left() -> None:
    with budget(0.2) as outer:
        with budget(10.0) as inner:
            assert inner <= outer <= 0.2
            assert remaining(10.0) <= 0.2
        with budget(0.05) as shorter:
            assert shorter <= 0.05


async def test_a_store_called_inside_another_call_shares_its_deadline() -> None:
    store = _Steps(timeout=10.0)
    store.delay = 5.0
    started = time.monotonic()
    with budget(0.2), pytest.raises(StoreTimeoutError):
        await store.get("k")
    assert time.monotonic() - started < 0.2 + SLACK


class _Hanging(BaseBackend):
    def __init__(self, timeout: float | None) -> None:
        super().__init__("hanging", Capabilities(0))
        self.timeout = timeout

    async def _open(self) -> None:
        return None

    async def _close(self) -> None:
        return None

    def _make_store(self, namespace: str) -> _Steps:
        return _Steps(timeout=self.timeout)

    async def _ping(self) -> str:
        await asyncio.sleep(30)
        return "answered"


async def test_a_health_check_that_does_not_finish_in_time_reports_unhealthy() -> None:
    backend = _Hanging(timeout=0.2)
    started = time.monotonic()
    health = await backend.health()
    assert time.monotonic() - started < 0.2 + SLACK
    assert health.ok is False
    assert "0.2 s" in health.detail


async def test_beginning_a_transaction_is_bounded_by_the_timeout() -> None:
    store = _Steps(timeout=0.2)
    store.begin_delay = 5.0
    started = time.monotonic()
    with pytest.raises(StoreTimeoutError):
        async with store.transaction():
            pass
    assert time.monotonic() - started < 0.2 + SLACK


async def test_a_commit_cut_short_has_an_unknown_outcome() -> None:
    store = _Steps(timeout=0.2)
    store.end_delay = 5.0
    started = time.monotonic()
    with pytest.raises(UnknownOutcomeError):
        async with store.transaction() as tx:
            await tx.save("k", 1)
    assert time.monotonic() - started < 0.2 + SLACK


async def test_a_rollback_cut_short_lets_the_bodys_error_through() -> None:
    store = _Steps(timeout=0.2)
    store.end_delay = 5.0
    started = time.monotonic()
    with pytest.raises(KeyError):
        async with store.transaction():
            raise KeyError("from the body")
    assert time.monotonic() - started < 0.2 + SLACK
