"""The per-backend circuit breaker: its states, and a store behind it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from polystore import (
    CircuitBreaker,
    CircuitBreakerStore,
    CircuitOpenError,
    ConflictError,
    DataStore,
    Polystore,
    StoreTimeoutError,
    StoreUnavailableError,
    UnknownOutcomeError,
    ValidationError,
)
from polystore.backends.sqlite import SqliteBackend, SqliteSettings


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _down() -> StoreUnavailableError:
    return StoreUnavailableError("refused", backend="b", operation="get")


def test_a_breaker_opens_after_the_configured_failures_in_a_row() -> None:
    breaker = CircuitBreaker("cache", failures=3, reset_after=2.0, clock=Clock())
    for _ in range(2):
        breaker.before("get")
        breaker.failure(_down())
    assert breaker.state == "closed"
    breaker.before("get")
    breaker.failure(StoreTimeoutError("slow"))
    assert breaker.state == "open"
    with pytest.raises(CircuitOpenError) as refused:
        breaker.before("save")
    assert refused.value.backend == "cache"
    assert refused.value.operation == "save"
    assert isinstance(refused.value, StoreUnavailableError)


def test_a_success_resets_the_count() -> None:
    breaker = CircuitBreaker("cache", failures=2, clock=Clock())
    breaker.failure(_down())
    breaker.success()
    breaker.failure(UnknownOutcomeError("lost after send"))
    assert breaker.state == "closed"
    breaker.failure(_down())
    assert breaker.state == "open"


def test_errors_about_the_call_not_the_backend_do_not_count() -> None:
    breaker = CircuitBreaker("cache", failures=1, clock=Clock())
    for exc in (ValidationError("bad key"), ConflictError("version"), ValueError("user code")):
        breaker.before("save")
        breaker.failure(exc)
    assert breaker.state == "closed"


def test_after_the_pause_one_probe_goes_through_and_its_success_closes() -> None:
    clock = Clock()
    breaker = CircuitBreaker("cache", failures=1, reset_after=2.0, clock=clock)
    breaker.failure(_down())
    clock.now += 1.9
    with pytest.raises(CircuitOpenError):
        breaker.before("get")
    clock.now += 0.2
    assert breaker.state == "half_open"
    breaker.before("get")  # the probe
    with pytest.raises(CircuitOpenError):
        breaker.before("get")  # everybody else waits for its answer
    breaker.success()
    assert breaker.state == "closed"
    breaker.before("get")


def test_a_failed_probe_opens_the_breaker_for_another_pause() -> None:
    clock = Clock()
    breaker = CircuitBreaker("cache", failures=3, reset_after=2.0, clock=clock)
    for _ in range(3):
        breaker.failure(_down())
    clock.now += 2.0
    breaker.before("get")
    breaker.failure(_down())  # one failure is enough while probing
    assert breaker.state == "open"
    clock.now += 1.0
    with pytest.raises(CircuitOpenError):
        breaker.before("get")
    clock.now += 1.0
    breaker.before("get")


def test_a_probe_that_fails_for_its_own_reasons_lets_the_next_call_probe() -> None:
    clock = Clock()
    breaker = CircuitBreaker("cache", failures=1, reset_after=1.0, clock=clock)
    breaker.failure(_down())
    clock.now += 1.0
    breaker.before("save")
    breaker.failure(ValidationError("bad value"))
    assert breaker.state == "half_open"
    breaker.before("get")


# -- a store behind the breaker ------------------------------------------------------


@pytest.fixture
def unreachable_store() -> DataStore:
    # Every I/O of this store fails with StoreUnavailableError (the directory cannot exist).
    backend = SqliteBackend(SqliteSettings(path="/proc/polystore-no-such-dir/db.sqlite"))
    return backend.namespace("ns")


Call = Callable[[DataStore], Awaitable[object]]
CALLS: dict[str, Call] = {
    "get": lambda s: s.get("k"),
    "save": lambda s: s.save("k", 1),
    "get_many": lambda s: s.get_many(["a", "b"]),
    "save_many": lambda s: s.save_many({"a": 1}),
    "delete": lambda s: s.delete("k"),
}


@pytest.mark.asyncio
@pytest.mark.parametrize("operation", list(CALLS))
async def test_a_dead_store_behind_a_breaker_fails_fast_once_open(
    unreachable_store: DataStore, operation: str
) -> None:
    breaker = CircuitBreaker("sqlite", failures=2, reset_after=60.0)
    store = CircuitBreakerStore(unreachable_store, breaker)
    call = CALLS[operation]
    for _ in range(2):
        with pytest.raises(StoreUnavailableError) as failed:
            await call(store)
        assert not isinstance(failed.value, CircuitOpenError)
    with pytest.raises(CircuitOpenError):
        await call(store)
    with pytest.raises(CircuitOpenError):  # an open breaker refuses before anything else
        await store.get("")
    assert breaker.state == "open"


@pytest.mark.asyncio
async def test_a_scan_and_a_transaction_count_like_any_call(unreachable_store: DataStore) -> None:
    breaker = CircuitBreaker("sqlite", failures=2, reset_after=60.0)
    store = CircuitBreakerStore(unreachable_store, breaker)
    with pytest.raises(StoreUnavailableError):
        _ = [key async for key in store.scan(prefix="a")]
    with pytest.raises(StoreUnavailableError):
        async with store.transaction() as tx:
            await tx.save("k", 1)
    assert breaker.state == "open"
    with pytest.raises(CircuitOpenError):
        _ = [key async for key in store.scan()]


@pytest.mark.asyncio
async def test_the_router_gives_each_backend_its_own_breaker(tmp_path: Path) -> None:
    config = {
        "backends": {
            "dead": {
                "plugin": "sqlite",
                "path": str(tmp_path / "dead.sqlite"),
                "circuit_breaker": {"failures": 2, "reset_after": 60},
            },
            "live": {"plugin": "sqlite", "path": str(tmp_path / "live.sqlite")},
            "plain": {"plugin": "memory", "circuit_breaker": {"enabled": False}},
        },
        "routes": {
            "a": {"backend": "dead"},
            "b": {"backend": "dead"},
            "c": {"backend": "live"},
            "d": {"backend": "plain"},
        },
    }
    async with Polystore.from_config(config) as app:
        assert sorted(app.breakers) == ["dead", "live"]
        assert isinstance(app.route("a"), CircuitBreakerStore)
        assert not isinstance(app.route("d"), CircuitBreakerStore)
        # Two unreachable calls (recorded here; the Redis tests kill a real server) open
        # the backend's breaker for every route on it, and for no other backend.
        for _ in range(2):
            app.breakers["dead"].failure(StoreUnavailableError("refused"))
        with pytest.raises(CircuitOpenError):
            await app.route("b").get("k")
        await app.route("c").save("k", 1)
        assert await app.route("c").get("k") == 1
        assert await app.route("d").save("k", 2)
