from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from polystore import Collection, Polystore, Session, ValidationError
from polystore.backends.memory import MemoryBackend, MemorySettings
from polystore.settings import RouteConfig
from polystore.validation import validate_ttl


def seconds_left(expires_at: datetime | None) -> float:
    assert expires_at is not None
    return (expires_at - datetime.now(timezone.utc)).total_seconds()


def test_a_timedelta_ttl_is_its_number_of_seconds() -> None:
    assert validate_ttl(timedelta(minutes=15)) == 900.0
    assert validate_ttl(timedelta(milliseconds=250)) == 0.25


@pytest.mark.parametrize("ttl", [timedelta(0), timedelta(seconds=-1), timedelta(days=365 * 101)])
def test_a_timedelta_ttl_out_of_range_is_rejected(ttl: timedelta) -> None:
    with pytest.raises(ValidationError, match="ttl"):
        validate_ttl(ttl)


def test_a_ttl_of_another_type_names_both_accepted_forms() -> None:
    with pytest.raises(ValidationError, match="number of seconds or a timedelta, not str"):
        validate_ttl("900")


@pytest.mark.asyncio
async def test_store_save_and_save_many_take_a_timedelta() -> None:
    async with MemoryBackend(MemorySettings()) as backend:
        store = backend.namespace("ttl")
        await store.save("a", 1, ttl=timedelta(minutes=10))
        await store.save_many({"b": 2}, ttl=timedelta(hours=1))
        a, b = await store.get_entry("a"), await store.get_entry("b")
    assert a is not None
    assert b is not None
    assert 590 < seconds_left(a.expires_at) <= 600
    assert 3590 < seconds_left(b.expires_at) <= 3600


@pytest.mark.asyncio
async def test_a_transaction_write_takes_a_timedelta() -> None:
    async with MemoryBackend(MemorySettings()) as backend:
        store = backend.namespace("ttl")
        async with store.transaction() as tx:
            await tx.save("a", 1, ttl=timedelta(seconds=30))
        entry = await store.get_entry("a")
    assert entry is not None
    assert 25 < seconds_left(entry.expires_at) <= 30


@pytest.mark.asyncio
async def test_a_collection_default_ttl_may_be_a_timedelta() -> None:
    async with MemoryBackend(MemorySettings()) as backend:
        sessions = Collection(backend.namespace("s"), Session, default_ttl=timedelta(minutes=5))
        await sessions.save(Session(id="s1", user_id="u1"))
        await sessions.save(Session(id="s2", user_id="u1"), ttl=timedelta(seconds=20))
        first, second = await sessions.get_entry("s1"), await sessions.get_entry("s2")
    assert first is not None
    assert second is not None
    assert 290 < seconds_left(first.expires_at) <= 300
    assert 15 < seconds_left(second.expires_at) <= 20


def test_a_collection_with_a_bad_default_ttl_fails_at_construction() -> None:
    backend = MemoryBackend(MemorySettings())
    with pytest.raises(ValidationError, match="ttl"):
        Collection(backend.namespace("s"), Session, default_ttl=timedelta(0))


@pytest.mark.parametrize("given", [timedelta(minutes=30), "PT30M", 1800, "1800"], ids=repr)
def test_a_route_default_ttl_accepts_seconds_timedelta_or_iso_duration(given: object) -> None:
    assert RouteConfig.model_validate({"backend": "x", "default_ttl": given}).default_ttl == 1800


@pytest.mark.asyncio
async def test_a_route_default_ttl_from_toml_sets_the_expiry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    config = {
        "backends": {"mem": {"plugin": "memory"}},
        "routes": {"sessions": {"backend": "mem", "default_ttl": "PT2M"}},
    }
    async with Polystore.from_config(config) as ps:
        await ps.sessions.save(Session(id="s1", user_id="u1"))
        entry = await ps.sessions.get_entry("s1")
    assert entry is not None
    assert 110 < seconds_left(entry.expires_at) <= 120
