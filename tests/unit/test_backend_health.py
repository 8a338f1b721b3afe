"""``BaseBackend.health()``: one place times the backend's ``_ping``, bounds it by the
backend's timeout and turns its failures into ``Health(ok=False)`` with a redacted detail."""

from __future__ import annotations

import asyncio
import time

import pytest

from polystore import Capabilities, DataStore, StoreUnavailableError
from polystore.backends.memory import MemoryBackend, MemorySettings
from polystore.spi import BaseBackend

PASSWORD = "hunter2-s3cret"
SLACK = 0.3


class _Pinged(BaseBackend):
    """A backend whose ping sleeps, answers or raises as a test says."""

    def __init__(self, *, timeout: float | None = None) -> None:
        super().__init__("pinged", Capabilities(0))
        self.timeout = timeout
        self.secrets = (PASSWORD,)
        self.delay = 0.0
        self.error: BaseException | None = None
        self.pings = 0

    async def _open(self) -> None:
        return None

    async def _close(self) -> None:
        return None

    def _make_store(self, namespace: str) -> DataStore:
        raise NotImplementedError

    async def _ping(self) -> str:
        self.pings += 1
        await asyncio.sleep(self.delay)
        if self.error is not None:
            raise self.error
        return "pinged 1.0"


@pytest.mark.asyncio
async def test_an_answer_is_ok_with_the_ping_detail_and_its_measured_latency() -> None:
    backend = _Pinged()
    backend.delay = 0.05
    health = await backend.health()
    assert health.ok is True
    assert health.backend == "pinged"
    assert health.detail == "pinged 1.0"
    assert 40 <= health.latency_ms < 50 + SLACK * 1000
    assert backend.pings == 1


@pytest.mark.asyncio
async def test_a_polystore_error_is_unhealthy_with_its_message_redacted() -> None:
    backend = _Pinged()
    backend.error = StoreUnavailableError(
        f"connection to redis://app:{PASSWORD}@db:6379 refused", backend="pinged"
    )
    health = await backend.health()
    assert health.ok is False
    assert "refused" in health.detail
    assert PASSWORD not in health.detail
    assert health.latency_ms >= 0


@pytest.mark.asyncio
async def test_an_untranslated_driver_error_is_unhealthy_too_and_redacted() -> None:
    backend = _Pinged()
    backend.error = OSError(f"auth failed with password={PASSWORD}")
    health = await backend.health()
    assert health.ok is False
    assert health.detail.startswith("OSError: auth failed")
    assert PASSWORD not in health.detail


@pytest.mark.asyncio
async def test_a_ping_slower_than_the_timeout_is_cut_short_and_unhealthy() -> None:
    backend = _Pinged(timeout=0.2)
    backend.delay = 30.0
    started = time.monotonic()
    health = await backend.health()
    elapsed = time.monotonic() - started
    assert elapsed < 0.2 + SLACK
    assert health.ok is False
    assert "0.2 s" in health.detail
    assert health.latency_ms >= 190


@pytest.mark.asyncio
async def test_cancelling_a_health_check_cancels_it() -> None:
    backend = _Pinged()
    backend.delay = 30.0
    task = asyncio.ensure_future(backend.health())
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


@pytest.mark.asyncio
async def test_the_memory_backend_pings_through_the_same_path() -> None:
    async with MemoryBackend(MemorySettings()) as backend:
        health = await backend.health()
    assert health.ok is True
    assert health.detail == "in-process"
    assert health.latency_ms >= 0


def test_a_backend_must_implement_ping() -> None:
    class _NoPing(BaseBackend):
        async def _open(self) -> None:
            return None

        async def _close(self) -> None:
            return None

        def _make_store(self, namespace: str) -> DataStore:
            raise NotImplementedError

    with pytest.raises(TypeError, match="_ping"):
        _NoPing("x", Capabilities(0))  # type: ignore[abstract]
