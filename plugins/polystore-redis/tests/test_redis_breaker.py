"""The router's per-backend circuit breaker against a real Redis server that dies."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from polystore import CircuitOpenError, Polystore, StoreUnavailableError
from polystore.testing import LocalRedisServer, eventually

pytestmark = pytest.mark.asyncio

StartRedis = Callable[..., LocalRedisServer]
TIMEOUT = 0.5
RESET_AFTER = 3.0
"""Long enough that the breaker is still open however long a busy machine stalls between
the calls that opened it and the calls that check it is open."""
FAST = TIMEOUT / 2
"""A refused call takes less than this; one that reached a frozen server takes TIMEOUT."""


def _config(server: LocalRedisServer, tmp_path: Path) -> dict[str, Any]:
    return {
        "backends": {
            "cache": {
                "plugin": "redis",
                "url": server.url,
                "timeout": TIMEOUT,
                "retry": {"attempts": 1},
                "circuit_breaker": {"failures": 3, "reset_after": RESET_AFTER},
            },
            "local": {"plugin": "sqlite", "path": str(tmp_path / "local.sqlite")},
        },
        "routes": {
            "sessions": {"backend": "cache"},
            "tokens": {"backend": "cache", "namespace": "tokens"},
            "profiles": {"backend": "local"},
        },
    }


async def _fails_unavailable(call: Any) -> StoreUnavailableError:
    with pytest.raises(StoreUnavailableError) as failed:
        await call
    return failed.value


async def test_a_killed_server_opens_its_breaker_and_the_other_backend_serves_on(
    private_redis: StartRedis, tmp_path: Path
) -> None:
    server = private_redis()
    async with Polystore.from_config(_config(server, tmp_path)) as app:
        sessions, tokens, profiles = (
            app.route("sessions"),
            app.route("tokens"),
            app.route("profiles"),
        )
        await sessions.save("s", 1)
        server.kill()
        for _ in range(3):
            error = await _fails_unavailable(sessions.get("s"))
            assert not isinstance(error, CircuitOpenError)
        assert app.breakers["cache"].state == "open"
        # Open: every route of the backend is refused at once, without I/O.
        started = time.perf_counter()
        for call in (sessions.get("s"), tokens.save("t", 1), sessions.get_many(["s"])):
            assert isinstance(await _fails_unavailable(call), CircuitOpenError)
        assert time.perf_counter() - started < FAST
        # The other backend is untouched.
        await profiles.save("p", {"name": "Ada"})
        assert await profiles.get("p") == {"name": "Ada"}
        # Back up: after the pause a probe call goes through and closes the breaker.
        server.start()

        async def serves() -> bool:
            try:
                await sessions.save("s2", 2)
            except StoreUnavailableError:
                return False
            return True

        assert await eventually(serves, timeout=15)
        assert app.breakers["cache"].state == "closed"
        assert await tokens.get("missing") is None


async def test_a_frozen_server_costs_a_few_timeouts_then_fast_failures(
    private_redis: StartRedis, tmp_path: Path
) -> None:
    server = private_redis()
    async with Polystore.from_config(_config(server, tmp_path)) as app:
        sessions = app.route("sessions")
        await sessions.save("s", 1)
        server.pause()
        try:
            for _ in range(3):
                started = time.perf_counter()
                await _fails_unavailable(sessions.get("s"))
                assert time.perf_counter() - started >= 0.4  # a timeout, not a refusal
            started = time.perf_counter()
            assert isinstance(await _fails_unavailable(sessions.get("s")), CircuitOpenError)
            assert time.perf_counter() - started < FAST
        finally:
            server.resume()
