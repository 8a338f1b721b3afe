"""Faults on a dedicated server with a real storage directory: kill, restart, late start."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import pytest
from polystore_mongodb import MongoBackend

from polystore import (
    RetrySettings,
    StoreError,
    StoreTimeoutError,
    StoreUnavailableError,
    UnknownOutcomeError,
)
from polystore.testing import LocalMongoServer

pytestmark = [pytest.mark.asyncio, pytest.mark.usefixtures("reap_driver_sockets")]

TIMEOUT = 2.0
SLACK = 2.0  # scheduling and the driver's own retry on top of the configured timeout


async def assert_fails_fast(call: Callable[[], Any], *allowed: type[StoreError]) -> StoreError:
    """``call`` raises one of ``allowed`` within the timeout (never hangs)."""
    started = time.monotonic()
    with pytest.raises(allowed) as info:
        await asyncio.wait_for(call(), timeout=TIMEOUT * 3 + SLACK)
    assert time.monotonic() - started < TIMEOUT + SLACK
    return info.value


async def test_a_killed_server_fails_calls_fast_and_keeps_every_acknowledged_write(
    private_mongo: Callable[..., LocalMongoServer], make_settings: Any
) -> None:
    server = private_mongo()
    settings = make_settings(server.url, timeout=TIMEOUT, retry=RetrySettings(attempts=1))
    async with MongoBackend(settings) as backend:
        store = backend.namespace("work")
        acknowledged: dict[str, int] = {}
        failures: list[StoreError] = []
        busy = asyncio.Event()

        async def writer(worker: int) -> None:
            for i in range(1_000_000):
                key = f"w{worker}-{i:06d}"
                try:
                    await store.save(key, i, ttl=3600 if i % 2 else None)
                except StoreError as exc:
                    failures.append(exc)
                    return
                acknowledged[key] = i
                if len(acknowledged) >= 200:
                    busy.set()

        writers = [asyncio.create_task(writer(n)) for n in range(4)]
        await busy.wait()
        server.kill()
        killed_at = time.monotonic()
        await asyncio.wait_for(asyncio.gather(*writers), timeout=TIMEOUT * 3 + SLACK)

        assert time.monotonic() - killed_at < TIMEOUT + SLACK
        assert len(failures) == 4
        assert all(isinstance(e, (StoreUnavailableError, UnknownOutcomeError)) for e in failures)
        await assert_fails_fast(lambda: store.get("w0-000000"), StoreUnavailableError)
        await assert_fails_fast(lambda: store.save("late", 1), StoreUnavailableError)
        await assert_fails_fast(lambda: store.get_many(["a", "b"]), StoreUnavailableError)
        assert (await backend.health()).ok is False

        await asyncio.to_thread(server.start)  # same port, same storage directory
        keys = list(acknowledged)
        assert await store.get_many(keys) == [acknowledged[key] for key in keys]
        assert await store.get("late") is None
        await store.save("after-restart", "ok")
        assert await store.get("after-restart") == "ok"


async def test_calls_succeed_right_after_a_clean_restart(
    private_mongo: Callable[..., LocalMongoServer], make_settings: Any
) -> None:
    server = private_mongo()
    async with MongoBackend(make_settings(server.url, timeout=TIMEOUT)) as backend:
        store = backend.namespace("restart")
        version = await store.save("k", 1)
        await asyncio.gather(*(store.get("k") for _ in range(10)))  # several pooled connections
        await asyncio.to_thread(server.restart)
        assert await store.get("k") == 1
        version = await store.save("k", 2, if_version=version)
        assert await store.get_many(["k"]) == [2]
        async with store.transaction() as tx:
            await tx.save("k", 3, if_version=version)
        assert await store.get("k") == 3


async def test_a_backend_opened_while_the_server_is_down_works_once_it_is_up(
    private_mongo: Callable[..., LocalMongoServer], make_settings: Any
) -> None:
    server = private_mongo(begin=False)
    backend = MongoBackend(make_settings(server.url, timeout=1.0))
    try:
        store = backend.namespace("late")
        await assert_fails_fast(lambda: store.get("k"), StoreUnavailableError)
        await asyncio.to_thread(server.start)
        await store.save("k", "v")
        assert await store.get("k") == "v"
        assert (await backend.health()).ok is True
    finally:
        await backend.aclose()


async def test_a_frozen_server_times_calls_out_and_serves_again_when_thawed(
    private_mongo: Callable[..., LocalMongoServer], make_settings: Any
) -> None:
    server = private_mongo()
    settings = make_settings(server.url, timeout=TIMEOUT, retry=RetrySettings(attempts=1))
    async with MongoBackend(settings) as backend:
        store = backend.namespace("frozen")
        await store.save("k", 1)
        server.pause()  # connections stay open, nothing answers
        try:
            await assert_fails_fast(lambda: store.get("k"), StoreTimeoutError)
            error = await assert_fails_fast(
                lambda: store.save("k", 2), StoreTimeoutError, UnknownOutcomeError
            )
        finally:
            server.resume()
        assert await store.get("k") in (1, 2)
        if isinstance(error, StoreTimeoutError):  # refused before it was sent
            assert await store.get("k") == 1
        await store.save("k", 3)
        assert await store.get("k") == 3
