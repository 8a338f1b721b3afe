"""Bounding many waits with one timer, and one call's budget shared by all its steps.

``asyncio.timeout`` arms a timer per wait: a few microseconds each, which shows when every
call of a busy store waits for a pooled connection. :class:`DeadlineWatch` keeps the
waiting tasks with their deadlines and one timer, set for the earliest; when it fires it
cancels the tasks that are overdue, whose waits then raise :class:`TimeoutError`, and sets
itself for the next. A wait costs two dictionary operations, and a timer only when it is
the earliest.

A call's *budget* is the other half: :func:`budget` records, for the running task, when
the call must have ended (a :mod:`contextvars` variable), so that every step below it —
retries and their back-off, pool waits, reconnects, the driver's own timeouts — spends
what is left (:func:`remaining`) instead of starting a fresh timeout of its own. Budgets
nest: an inner call never gets more time than the outer call has left.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Awaitable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar, Token
from typing import TypeVar

__all__ = [
    "STEP_MARGIN",
    "DeadlineWatch",
    "budget",
    "current_deadline",
    "end_budget",
    "remaining",
    "start_budget",
    "step_deadline",
]

T = TypeVar("T")

_MIN_SECONDS = 0.001  # what is left is never reported as 0: some drivers read 0 as "none"

STEP_MARGIN = 0.02
"""Seconds before the call's deadline at which the steps below it are told to give up, so
that a driver's own timeout (which says precisely what happened: nothing was sent, or a
write may have been applied) fires before the whole call is cut short."""

_deadline: ContextVar[float | None] = ContextVar("polystore_deadline", default=None)


def current_deadline() -> float | None:
    """When the running call must have ended (``time.monotonic()`` seconds), or ``None``
    outside any call with a timeout."""
    return _deadline.get()


def step_deadline(default: float) -> float:
    """When a step of the running call must end (``time.monotonic()`` seconds): the
    call's deadline less :data:`STEP_MARGIN`, or ``default`` seconds from now outside a
    call with a timeout."""
    deadline = _deadline.get()
    if deadline is None:
        return time.monotonic() + default
    return deadline - STEP_MARGIN


def remaining(default: float) -> float:
    """Seconds a step of the running call may take: what is left of the call's budget
    (less :data:`STEP_MARGIN`), at most ``default``.

    Args:
        default: The step's own timeout, used alone outside a budget.

    Returns:
        A positive number of seconds (at least one millisecond).
    """
    deadline = _deadline.get()
    if deadline is None:
        return default
    return max(min(deadline - STEP_MARGIN - time.monotonic(), default), _MIN_SECONDS)


def start_budget(timeout: float) -> tuple[float, Token[float | None]]:
    """Start a budget of ``timeout`` seconds (or what the enclosing budget has left, if
    less); return the seconds granted and the token that :func:`end_budget` takes.

    The two halves of :func:`budget`, for hot paths where a context manager costs too
    much; always pair them with ``try``/``finally``.
    """
    now = time.monotonic()
    deadline = now + timeout
    granted = timeout
    outer = _deadline.get()
    if outer is not None and outer < deadline:
        deadline = outer
        granted = max(outer - now, 0.0)
    return granted, _deadline.set(deadline)


def end_budget(token: Token[float | None]) -> None:
    """End the budget :func:`start_budget` started."""
    _deadline.reset(token)


@contextmanager
def budget(timeout: float) -> Iterator[float]:
    """Give the code inside ``timeout`` seconds, or what the enclosing budget has left if
    that is less; yield the seconds granted.

    Only records the deadline: bounding the awaits is up to the caller (with
    :meth:`DeadlineWatch.wait`) and to the steps that read :func:`remaining`.
    """
    granted, token = start_budget(timeout)
    try:
        yield granted
    finally:
        end_budget(token)


class DeadlineWatch:
    """Time-limited waits of the tasks of one event loop, sharing one timer.

    Use one instance per pool (or per loop); it is not thread-safe, like asyncio itself.
    Cancelling a waiting task from outside still cancels it: only the watch's own
    cancellations become :class:`TimeoutError` (as with ``asyncio.timeout``).

    The timer is left armed when a wait ends early: successive waits of one timeout have
    ever later deadlines, so they find it set for an earlier moment and add nothing;
    when it fires it cancels what is overdue and is set again for the earliest wait
    still running, if any.
    """

    __slots__ = ("_expired", "_loop", "_timer", "_waiting")

    def __init__(self) -> None:
        self._waiting: dict[asyncio.Task[object], float] = {}
        self._expired: set[asyncio.Task[object]] = set()
        self._timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def waiting(self) -> int:
        """How many waits are in progress."""
        return len(self._waiting)

    async def wait(self, awaitable: Awaitable[T], timeout: float) -> T:
        """Await ``awaitable`` for at most ``timeout`` seconds.

        Raises:
            TimeoutError: The deadline passed first; ``awaitable`` was cancelled.
        """
        task = asyncio.current_task()
        if task is None or sys.version_info < (3, 11):  # pragma: no cover - no uncancel()
            return await asyncio.wait_for(awaitable, timeout)
        loop = task.get_loop()
        deadline = loop.time() + timeout
        cancelling = task.cancelling()
        self._waiting[task] = deadline
        timer = self._timer
        if timer is None or deadline < timer.when() or loop is not self._loop:
            if timer is not None:
                timer.cancel()
            self._loop = loop
            self._timer = loop.call_at(deadline, self._expire, loop)
        try:
            result = await awaitable
        except asyncio.CancelledError:
            if task in self._expired and task.uncancel() <= cancelling:
                raise TimeoutError from None
            raise
        else:
            if task in self._expired:  # the cancellation came too late to matter
                task.uncancel()
            return result
        finally:
            self._waiting.pop(task, None)
            if self._expired:
                self._expired.discard(task)

    def _expire(self, loop: asyncio.AbstractEventLoop) -> None:
        self._timer = None
        now = loop.time()
        earliest: float | None = None
        for task, deadline in list(self._waiting.items()):
            if deadline <= now:
                del self._waiting[task]
                self._expired.add(task)
                task.cancel()
            elif earliest is None or deadline < earliest:
                earliest = deadline
        if earliest is not None:
            self._timer = loop.call_at(earliest, self._expire, loop)
