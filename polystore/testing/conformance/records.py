"""Idempotent records: one stored model per idempotency key, under concurrency too."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest

from polystore.collections import TransactionCollection
from polystore.errors import IdempotencyConflictError
from polystore.idempotency import IDEMPOTENCY_PREFIX
from polystore.models import Transaction
from polystore.protocol import DataStore
from polystore.testing.conformance._support import requires
from polystore.types import Capabilities

CONCURRENT_CALLERS = 20
ROUNDS = 5


def _payment(idempotency_key: str, amount: str = "42.10") -> Transaction:
    return Transaction(
        account_id="acct-1",
        amount=Decimal(amount),
        currency="EUR",
        direction="debit",
        idempotency_key=idempotency_key,
    )


class RecordTests:
    """Part of :class:`~polystore.testing.StoreConformance`."""

    async def test_concurrent_repeats_of_one_request_store_one_record_and_raise_nothing(
        self, store: DataStore
    ) -> None:
        requires(store, Capabilities.CAS)
        records = TransactionCollection(store, Transaction)
        for round_ in range(ROUNDS):
            calls = [records.record(_payment(f"order-{round_}")) for _ in range(CONCURRENT_CALLERS)]
            results = await asyncio.gather(*calls)
            created = [stored for stored, was_created in results if was_created]
            assert len(created) == 1, f"round {round_}: {len(created)} callers created"
            assert {stored.id for stored, _ in results} == {created[0].id}
            assert await records.by_idempotency_key(f"order-{round_}") == created[0]

    async def test_a_repeat_with_another_payload_is_refused_naming_the_field(
        self, store: DataStore
    ) -> None:
        requires(store, Capabilities.CAS)
        records = TransactionCollection(store, Transaction)
        first, _ = await records.record(_payment("order-1", "42.10"))
        with pytest.raises(IdempotencyConflictError, match="amount") as caught:
            await records.record(_payment("order-1", "19.99"))
        assert caught.value.fields == ("amount",)
        assert "19.99" not in str(caught.value)
        assert await records.by_idempotency_key("order-1") == first

    async def test_concurrent_requests_with_two_payloads_keep_the_first_and_refuse_the_other(
        self, store: DataStore
    ) -> None:
        requires(store, Capabilities.CAS)
        records = TransactionCollection(store, Transaction)
        amounts = ["42.10", "19.99"] * (CONCURRENT_CALLERS // 2)
        results = await asyncio.gather(
            *(records.record(_payment("order-2", amount)) for amount in amounts),
            return_exceptions=True,
        )
        answered = [r for r in results if not isinstance(r, BaseException)]
        refused = [r for r in results if isinstance(r, BaseException)]
        created = [stored for stored, was_created in answered if was_created]
        assert len(created) == 1
        winner = created[0]
        assert all(stored == winner for stored, _ in answered)
        assert len(answered) == CONCURRENT_CALLERS // 2
        assert all(isinstance(exc, IdempotencyConflictError) for exc in refused), refused

    async def test_a_repeat_is_recognised_after_the_record_was_updated(
        self, store: DataStore
    ) -> None:
        requires(store, Capabilities.CAS)
        records = TransactionCollection(store, Transaction)
        first, _ = await records.record(_payment("order-3"))
        entry = await records.get_entry(first.id)
        assert entry is not None
        posted = first.model_copy(update={"status": "posted"})
        await records.save(posted, if_version=entry.version)
        stored, created = await records.record(_payment("order-3"))
        assert created is False
        assert stored == posted

    async def test_a_record_left_half_written_is_completed_by_its_repeat(
        self, store: DataStore
    ) -> None:
        requires(store, Capabilities.CAS)
        records = TransactionCollection(store, Transaction)
        first = _payment("order-4")
        # What a crash between the marker and the record leaves on a store without
        # transactions (written here in the format of earlier versions: the key alone).
        await store.save(IDEMPOTENCY_PREFIX + "order-4", first.id)
        stored, created = await records.record(first)
        assert created is True
        assert stored == first
        assert await records.get(first.id) == first
        again, created_again = await records.record(_payment("order-4"))
        assert (again, created_again) == (first, False)

    async def test_a_marker_of_an_earlier_version_still_refuses_another_payload(
        self, store: DataStore
    ) -> None:
        requires(store, Capabilities.CAS)
        records = TransactionCollection(store, Transaction)
        first = _payment("order-5", "42.10")
        await records.record(first)
        await store.save(IDEMPOTENCY_PREFIX + "order-5", first.id)  # the earlier format
        with pytest.raises(IdempotencyConflictError) as caught:
            await records.record(_payment("order-5", "19.99"))
        assert caught.value.fields == ("amount",)
