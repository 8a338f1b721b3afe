from __future__ import annotations

from decimal import Decimal

import pytest
from pydantic import BaseModel, SecretStr

from polystore import Collection, SerializationError, UserProfile
from polystore.backends.memory import MemoryBackend, MemorySettings


class Account(BaseModel):
    id: str
    balance: Decimal
    token: SecretStr


@pytest.mark.asyncio
async def test_a_stored_value_that_fails_validation_names_the_field() -> None:
    async with MemoryBackend(MemorySettings()) as backend:
        store = backend.namespace("profiles")
        profiles = Collection(store, UserProfile)
        await store.save("u1", {"user_id": "u1", "email": 42})
        with pytest.raises(SerializationError) as caught:
            await profiles.get("u1")
    message = str(caught.value)
    assert "stored value is not a valid UserProfile: 1 error(s): email: " in message
    assert "key='u1'" in message


@pytest.mark.asyncio
async def test_every_failing_field_is_named_without_its_value() -> None:
    async with MemoryBackend(MemorySettings()) as backend:
        store = backend.namespace("accounts")
        accounts = Collection(store, Account)
        await store.save("a1", {"id": "a1", "balance": "lots", "token": ["hunter2-secret"]})
        with pytest.raises(SerializationError) as caught:
            await accounts.get("a1")
    message = str(caught.value)
    assert "2 error(s): balance: " in message
    assert "; token: " in message
    assert "hunter2-secret" not in message
    assert "lots" not in message
