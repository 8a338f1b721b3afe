"""The Polystore facade on the embedded backends."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import pytest
import pytest_asyncio

from polystore import (
    AlreadyExistsError,
    Capabilities,
    ConfigurationError,
    IdempotencyConflictError,
    Polystore,
    Session,
    Transaction,
    UserProfile,
    ValidationError,
)
from polystore.backends.memory import MemoryBackend, MemorySettings


@pytest_asyncio.fixture
async def ps(tmp_path: Path) -> AsyncIterator[Polystore]:
    config = {
        "backends": {
            "cache": {"plugin": "memory"},
            "main": {"plugin": "sqlite", "path": str(tmp_path / "main.db")},
        },
        "routes": {
            "sessions": {"backend": "cache"},
            "profiles": {"backend": "main"},
            "transactions": {"backend": "main"},
            "audit": {"backend": "main", "namespace": "audit-log"},
        },
    }
    async with Polystore.from_config(config) as polystore:
        yield polystore


def payment(key: str = "order-1", amount: str = "10.05") -> Transaction:
    return Transaction(
        account_id="acct-1",
        amount=Decimal(amount),
        currency="EUR",
        direction="debit",
        idempotency_key=key,
    )


@pytest.mark.asyncio
async def test_routes_send_each_kind_of_data_to_its_backend(ps: Polystore) -> None:
    assert ps.routes["sessions"].plugin == "memory"
    assert ps.routes["profiles"].plugin == "sqlite"
    assert ps.route("audit").name == "main/audit-log"
    await ps.sessions.save(Session(id="s1", user_id="u1"))
    assert await ps.route("sessions").exists("s1")
    assert not await ps.route("profiles").exists("s1")


@pytest.mark.asyncio
async def test_the_sessions_route_applies_its_default_ttl(ps: Polystore) -> None:
    await ps.sessions.save(Session(id="s1", user_id="u1"))
    entry = await ps.sessions.get_entry("s1")
    assert entry is not None
    assert entry.expires_at is not None
    assert entry.model.user_id == "u1"


@pytest.mark.asyncio
async def test_an_explicit_ttl_of_none_keeps_a_session_forever(ps: Polystore) -> None:
    await ps.sessions.save(Session(id="s1", user_id="u1"), ttl=None)
    entry = await ps.sessions.get_entry("s1")
    assert entry is not None
    assert entry.expires_at is None


@pytest.mark.asyncio
async def test_decimal_amounts_survive_exactly(ps: Polystore) -> None:
    tx = payment(amount="12345678901234567890.123456789012345678")
    await ps.transactions.save(tx)
    stored = await ps.get_transaction(tx.id)
    assert stored is not None
    assert stored.amount == Decimal("12345678901234567890.123456789012345678")
    assert stored == tx


@pytest.mark.asyncio
async def test_the_same_idempotency_key_stores_one_transaction(ps: Polystore) -> None:
    first = await ps.save_transaction(payment("order-7", "5.00"))
    retry = await ps.save_transaction(payment("order-7", "5.0"))
    assert retry.id == first.id
    assert retry.amount == Decimal("5.00")
    keys = [key async for key in ps.transactions.scan()]
    assert keys == [first.id]


@pytest.mark.asyncio
async def test_the_same_idempotency_key_with_another_amount_is_refused(ps: Polystore) -> None:
    await ps.save_transaction(payment("order-8", "42.10"))
    with pytest.raises(IdempotencyConflictError, match="amount") as caught:
        await ps.save_transaction(payment("order-8", "19.99"))
    assert caught.value.fields == ("amount",)
    assert "19.99" not in str(caught.value)


@pytest.mark.asyncio
async def test_concurrent_retries_of_one_idempotency_key_store_one_transaction(
    ps: Polystore,
) -> None:
    results = await asyncio.gather(*(ps.transactions.record(payment("dup")) for _ in range(10)))
    created = [stored for stored, was_created in results if was_created]
    assert len(created) == 1
    assert {stored.id for stored, _ in results} == {created[0].id}


@pytest.mark.asyncio
async def test_a_transaction_id_reused_with_another_key_is_refused(ps: Polystore) -> None:
    first = payment("a")
    await ps.transactions.record(first)
    clash = payment("b").model_copy(update={"id": first.id})
    with pytest.raises(AlreadyExistsError):
        await ps.transactions.record(clash)


def test_currencies_must_be_iso_4217() -> None:
    with pytest.raises(ValueError, match="ISO 4217"):
        Transaction(
            account_id="a",
            amount=Decimal(1),
            currency="XYZ",
            direction="credit",
            idempotency_key="k",
        )


@pytest.mark.asyncio
async def test_reference_helpers_round_trip(ps: Polystore) -> None:
    await ps.save_session_data("s9", {"cart": [1, 2]}, user_id="u9", ttl=60)
    assert await ps.get_session_data("s9") == {"cart": [1, 2]}
    profile = await ps.save_user_profile("u9", {"email": "u9@example.com"})
    assert await ps.get_user_profile("u9") == profile
    await ps.save("audit", "evt-1", {"what": "login"})
    assert await ps.get("audit", "evt-1") == {"what": "login"}
    assert await ps.delete("audit", "evt-1") is True


@pytest.mark.asyncio
async def test_an_invalid_profile_is_a_validation_error(ps: Polystore) -> None:
    with pytest.raises(ValidationError, match="email"):
        await ps.save_user_profile("u1", {"email": "not-an-email"})


@pytest.mark.asyncio
async def test_profiles_are_found_by_field(ps: Polystore) -> None:
    await ps.profiles.save_many(
        [
            UserProfile(user_id="a", display_name="Ada"),
            UserProfile(user_id="b", display_name="Bob"),
        ]
    )
    found = await ps.profiles.find(display_name="Bob")
    assert [p.user_id for p in found] == ["b"]


@pytest.mark.asyncio
async def test_an_unknown_route_is_a_configuration_error(ps: Polystore) -> None:
    with pytest.raises(ConfigurationError, match=r"\[routes.nope\]"):
        ps.route("nope")


@pytest.mark.asyncio
async def test_register_store_adds_a_route_checked_like_configured_ones(ps: Polystore) -> None:
    store = MemoryBackend(MemorySettings()).namespace("extra")
    ps.register_store("extra", store, requires=Capabilities.TTL)
    await ps.save("extra", "k", 1)
    assert await store.get("k") == 1
    from polystore import RouteRequirementError

    with pytest.raises(RouteRequirementError, match="durable"):
        ps.register_store("strict", store, requires=Capabilities.DURABLE)


@pytest.mark.asyncio
async def test_health_reports_every_backend(ps: Polystore) -> None:
    health = await ps.health()
    assert set(health) == {"cache", "main"}
    assert all(h.ok for h in health.values())


@pytest.mark.asyncio
async def test_using_routes_before_start_is_an_error(tmp_path: Path) -> None:
    ps = Polystore.from_config({"backends": {"m": {"plugin": "memory"}}, "routes": {}})
    with pytest.raises(ConfigurationError, match="not started"):
        ps.route("sessions")


@pytest.mark.asyncio
async def test_a_stored_value_that_does_not_fit_the_model_is_a_serialization_error(
    ps: Polystore,
) -> None:
    from polystore import SerializationError

    await ps.route("profiles").save("broken", {"user_id": 5})
    with pytest.raises(SerializationError, match="UserProfile"):
        await ps.profiles.get("broken")
