"""A FastAPI application on polystore: profiles with optimistic concurrency, idempotent payments.

Run it with ``uvicorn examples.fastapi_app:app`` (the configuration comes from
``polystore.toml`` / ``POLYSTORE_*``; with neither, from the embedded SQLite default). It
shows the three pieces ``docs/integrations/fastapi.md`` explains:

- the lifespan opens one :class:`~polystore.Polystore` for the process and closes it;
- a dependency hands it to the endpoints;
- one exception handler turns polystore's errors into HTTP statuses.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import Depends, FastAPI, Header, HTTPException, Request, Response
from fastapi.responses import JSONResponse

from polystore import (
    AlreadyExistsError,
    CircuitOpenError,
    ConflictError,
    IdempotencyConflictError,
    Polystore,
    PolystoreError,
    StoreTimeoutError,
    StoreUnavailableError,
    Transaction,
    UnknownOutcomeError,
    UserProfile,
    ValidationError,
    Version,
)

# Most specific first: the first class the error is an instance of gives the status.
HTTP_STATUS: list[tuple[type[PolystoreError], int]] = [
    (ValidationError, 422),  # bad key, value or ttl: the client's request
    (IdempotencyConflictError, 409),  # same idempotency key, another payload
    (AlreadyExistsError, 409),
    (ConflictError, 412),  # compare-and-set lost: the If-Match version is stale
    (StoreTimeoutError, 504),
    (CircuitOpenError, 503),
    (StoreUnavailableError, 503),
    (UnknownOutcomeError, 503),  # may have been applied: retry with the same key
]


def http_status(exc: PolystoreError) -> int:
    """The HTTP status for a polystore error (500 for anything not listed)."""
    return next((status for kind, status in HTTP_STATUS if isinstance(exc, kind)), 500)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """One Polystore per process: opened before the first request, closed at shutdown."""
    async with Polystore.from_settings() as ps:
        app.state.polystore = ps
        yield


app = FastAPI(title="polystore example", lifespan=lifespan)


def get_polystore(request: Request) -> Polystore:
    """The application's Polystore (a dependency)."""
    ps: Polystore = request.app.state.polystore
    return ps


Store = Annotated[Polystore, Depends(get_polystore)]


@app.exception_handler(PolystoreError)
async def polystore_error(request: Request, exc: PolystoreError) -> JSONResponse:
    """Every polystore error as JSON with its status; the message never holds a secret."""
    status = http_status(exc)
    headers = {"Retry-After": "1"} if status in (503, 504) else None
    body = {"error": type(exc).__name__, "detail": exc.message}
    return JSONResponse(body, status_code=status, headers=headers)


@app.put("/profiles/{user_id}", status_code=200)
async def put_profile(
    user_id: str,
    profile: UserProfile,
    ps: Store,
    response: Response,
    if_match: Annotated[str | None, Header()] = None,
) -> UserProfile:
    """Create or replace a profile; with ``If-Match: <version>`` only if it is unchanged."""
    profile = profile.model_copy(update={"user_id": user_id})
    expected = Version(if_match) if if_match else None
    version = await ps.profiles.save(profile, if_version=expected)
    response.headers["ETag"] = version
    return profile


@app.get("/profiles/{user_id}")
async def get_profile(user_id: str, ps: Store, response: Response) -> UserProfile:
    """A profile, with its version as ``ETag``; 404 if there is none."""
    entry = await ps.profiles.get_entry(user_id)
    if entry is None:
        raise HTTPException(status_code=404, detail=f"no profile {user_id!r}")
    response.headers["ETag"] = entry.version
    return entry.model


@app.post("/payments", status_code=201)
async def post_payment(payment: Transaction, ps: Store, response: Response) -> Transaction:
    """Record a payment once per idempotency key: 201 the first time, 200 for a repeat."""
    stored, created = await ps.transactions.record(payment)
    if not created:
        response.status_code = 200
    return stored
