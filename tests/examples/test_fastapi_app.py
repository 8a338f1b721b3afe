"""examples/fastapi_app.py over httpx's ASGI transport, inside the app's own lifespan."""

from __future__ import annotations

import importlib.util
import os
from collections.abc import AsyncIterator
from pathlib import Path
from types import ModuleType

import httpx
import pytest
import pytest_asyncio

from polystore import (
    CircuitOpenError,
    IdempotencyConflictError,
    SerializationError,
    StoreTimeoutError,
    UnknownOutcomeError,
    ValidationError,
)

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "fastapi_app.py"
PAYMENT = {
    "account_id": "acct-1",
    "amount": "42.10",
    "currency": "EUR",
    "direction": "debit",
    "idempotency_key": "order-1",
}


def load_example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("fastapi_app_example", EXAMPLE)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def example() -> ModuleType:
    return load_example()


@pytest_asyncio.fixture
async def client(
    example: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[httpx.AsyncClient]:
    monkeypatch.chdir(tmp_path)  # the embedded default writes ./.polystore/
    for name in list(os.environ):
        if name.startswith(("POLYSTORE_BACKENDS", "POLYSTORE_ROUTES", "POLYSTORE_CONFIG")):
            monkeypatch.delenv(name)
    app = example.app
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
            yield client


@pytest.mark.asyncio
async def test_the_lifespan_opens_polystore_and_closes_it(
    example: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    app = example.app
    async with app.router.lifespan_context(app):
        ps = app.state.polystore
        assert set(ps.routes) == {"sessions", "profiles", "transactions"}
    assert ps.routes == {}


@pytest.mark.asyncio
async def test_a_profile_round_trips_with_its_version_as_etag(client: httpx.AsyncClient) -> None:
    put = await client.put("/profiles/u1", json={"user_id": "u1", "email": "ada@example.com"})
    assert put.status_code == 200
    got = await client.get("/profiles/u1")
    assert got.status_code == 200
    assert got.json()["email"] == "ada@example.com"
    assert got.headers["ETag"] == put.headers["ETag"]


@pytest.mark.asyncio
async def test_a_write_with_a_stale_if_match_is_412(client: httpx.AsyncClient) -> None:
    first = await client.put("/profiles/u1", json={"user_id": "u1"})
    await client.put("/profiles/u1", json={"user_id": "u1", "display_name": "Ada"})
    stale = await client.put(
        "/profiles/u1",
        json={"user_id": "u1", "display_name": "Grace"},
        headers={"If-Match": first.headers["ETag"]},
    )
    assert stale.status_code == 412
    assert stale.json()["error"] == "ConflictError"
    assert (await client.get("/profiles/u1")).json()["display_name"] == "Ada"


@pytest.mark.asyncio
async def test_a_payment_is_recorded_once_per_idempotency_key(client: httpx.AsyncClient) -> None:
    first = await client.post("/payments", json=PAYMENT)
    repeat = await client.post("/payments", json=PAYMENT)
    assert first.status_code == 201
    assert repeat.status_code == 200
    assert repeat.json()["id"] == first.json()["id"]


@pytest.mark.asyncio
async def test_the_same_idempotency_key_with_another_amount_is_409(
    client: httpx.AsyncClient,
) -> None:
    await client.post("/payments", json=PAYMENT)
    other = await client.post("/payments", json={**PAYMENT, "amount": "99.00"})
    assert other.status_code == 409
    assert other.json()["error"] == "IdempotencyConflictError"


@pytest.mark.asyncio
async def test_a_request_body_that_fails_validation_is_422(client: httpx.AsyncClient) -> None:
    bad = await client.post("/payments", json={**PAYMENT, "currency": "XXY"})
    assert bad.status_code == 422


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (ValidationError("bad key"), 422),
        (IdempotencyConflictError("other payload", fields=("amount",)), 409),
        (StoreTimeoutError("slow"), 504),
        (CircuitOpenError("open"), 503),
        (UnknownOutcomeError("sent"), 503),
        (SerializationError("not a model"), 500),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, Exception) else str(value),
)
def test_each_polystore_error_has_its_http_status(
    example: ModuleType, error: Exception, status: int
) -> None:
    assert example.http_status(error) == status
