"""DeadlineWatch: many waits bounded by one timer."""

from __future__ import annotations

import asyncio
import sys
import time

import pytest

from polystore.deadlines import DeadlineWatch

pytestmark = [
    pytest.mark.asyncio,
    pytest.mark.skipif(sys.version_info < (3, 11), reason="3.10 falls back to wait_for"),
]


async def test_a_wait_that_finishes_in_time_returns_its_result() -> None:
    watch = DeadlineWatch()
    loop = asyncio.get_running_loop()
    future: asyncio.Future[str] = loop.create_future()
    loop.call_later(0.01, future.set_result, "done")
    assert await watch.wait(future, 5.0) == "done"
    assert watch.waiting == 0


async def test_later_waits_reuse_the_timer_an_earlier_wait_left_armed() -> None:
    watch = DeadlineWatch()
    loop = asyncio.get_running_loop()
    first: asyncio.Future[int] = loop.create_future()
    first.set_result(1)
    await watch.wait(first, 5.0)
    timer = watch._timer
    assert timer is not None
    second: asyncio.Future[int] = loop.create_future()
    second.set_result(2)
    assert await watch.wait(second, 5.0) == 2
    assert watch._timer is timer  # a later deadline needs no timer of its own


async def test_a_timer_left_armed_fires_cancels_nothing_and_disarms() -> None:
    watch = DeadlineWatch()
    done: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    done.set_result(1)
    await watch.wait(done, 0.02)
    await asyncio.sleep(0.1)
    assert watch._timer is None
    task = asyncio.current_task()
    assert task is not None
    assert task.cancelling() == 0


async def test_an_overdue_wait_raises_timeout_and_cancels_what_it_awaited() -> None:
    watch = DeadlineWatch()
    future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        await watch.wait(future, 0.05)
    assert 0.04 <= time.monotonic() - started < 1.0
    assert future.cancelled()
    task = asyncio.current_task()
    assert task is not None
    assert task.cancelling() == 0
    assert watch.waiting == 0


async def test_a_cancel_from_outside_stays_a_cancel() -> None:
    watch = DeadlineWatch()
    future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(watch.wait(future, 5.0))
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert watch.waiting == 0


async def test_each_waiter_times_out_at_its_own_deadline() -> None:
    watch = DeadlineWatch()
    loop = asyncio.get_running_loop()
    futures: list[asyncio.Future[None]] = [loop.create_future() for _ in range(60)]
    # Three groups, started in mixed order: out at 0.05 s, out at 0.15 s, answered at 0.3 s.
    timeouts = [(0.05, 0.15, 5.0)[index % 3] for index in range(60)]
    started = loop.time()

    async def waiter(index: int) -> tuple[str, float]:
        try:
            await watch.wait(futures[index], timeouts[index])
        except TimeoutError:
            return "timeout", loop.time() - started
        return "done", loop.time() - started

    tasks = {index: asyncio.create_task(waiter(index)) for index in reversed(range(60))}
    await asyncio.sleep(0.3)
    for index in range(2, 60, 3):
        futures[index].set_result(None)
    for index, task in tasks.items():
        outcome, elapsed = await task
        expected = ("timeout", 0.05, 0.14) if index % 3 == 0 else ("timeout", 0.15, 0.29)
        if index % 3 == 2:
            expected = ("done", 0.3, 5.0)
        assert outcome == expected[0], index
        assert expected[1] - 0.01 <= elapsed < expected[2], (index, elapsed)
    assert watch.waiting == 0
    assert not watch._expired


async def test_one_timer_serves_every_waiter() -> None:
    watch = DeadlineWatch()
    loop = asyncio.get_running_loop()
    futures = [loop.create_future() for _ in range(50)]
    tasks = [asyncio.create_task(watch.wait(future, 5.0)) for future in futures]
    await asyncio.sleep(0)
    assert watch.waiting == 50
    timers = [handle for handle in loop._scheduled if not handle.cancelled()]  # type: ignore[attr-defined]
    assert len(timers) == 1
    for index, future in enumerate(futures):
        future.set_result(index)
    assert await asyncio.gather(*tasks) == list(range(50))
    assert watch.waiting == 0
    assert not watch._expired
