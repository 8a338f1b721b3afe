"""Fan a call out to every replica and return as soon as a quorum has answered.

The replicas that have not answered by then (stragglers) are not waited for: their
calls go on in the background, tracked by :class:`Background`, which bounds how many
may be pending (past the bound, a call waits for its own stragglers, each bounded by its
replica's timeout) and logs the ones that fail (what they did not write is left for
read repair and :meth:`~polystore.replication.ReplicatedStore.repair`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

__all__ = ["Background", "Outcome", "fan_out", "gather_all", "require_read", "require_write"]

from polystore.errors import (
    QuorumUnavailableError,
    QuorumUnknownOutcomeError,
    SerializationError,
    StoreError,
    StoreUnavailableError,
    ValidationError,
)

logger = logging.getLogger("polystore.replication")

T = TypeVar("T")


@dataclass
class Outcome(Generic[T]):
    """What the replicas answered before the call returned.

    Attributes:
        results: Answers by replica name.
        errors: Errors by replica name.
        pending: Replicas still working when the call returned.
    """

    results: dict[str, T] = field(default_factory=dict)
    errors: dict[str, BaseException] = field(default_factory=dict)
    pending: tuple[str, ...] = ()


class Background:
    """The calls that went on after their quorum call returned.

    Args:
        limit: Most calls pending at once; past it, quorum calls wait for their own.
    """

    def __init__(self, limit: int = 10_000) -> None:
        self.limit = limit
        self._tasks: set[asyncio.Future[Any]] = set()
        self.failed = 0
        """How many background calls failed (their work is left for repair)."""

    def __len__(self) -> int:
        return len(self._tasks)

    @property
    def full(self) -> bool:
        """Whether no more calls may be left pending."""
        return len(self._tasks) >= self.limit

    def adopt(self, task: asyncio.Future[Any], what: str) -> None:
        """Track ``task`` until it ends; log it if it fails."""
        self._tasks.add(task)
        task.add_done_callback(lambda done: self._finished(done, what))

    def spawn(self, work: Awaitable[object], what: str) -> bool:
        """Run ``work`` in the background unless full; return whether it was started."""
        if self.full:
            if asyncio.iscoroutine(work):
                work.close()
            return False
        self.adopt(asyncio.ensure_future(work), what)
        return True

    def _finished(self, task: asyncio.Future[Any], what: str) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            self.failed += 1
            logger.debug("background %s failed, left for repair: %r", what, exc)

    async def settle(self, timeout: float) -> None:
        """Wait up to ``timeout`` seconds for the calls pending now; cancel nothing."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=timeout)

    async def drain(self, timeout: float | None = None) -> None:
        """Wait for the pending calls (at most ``timeout`` seconds), then cancel the rest."""
        if not self._tasks:
            return
        _, pending = await asyncio.wait(set(self._tasks), timeout=timeout)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending)


async def fan_out(
    calls: Mapping[str, Awaitable[T]],
    need: int,
    background: Background,
    what: str,
    *,
    wait_all: bool = False,
) -> Outcome[T]:
    """Run every call concurrently; return once ``need`` succeeded or can no longer
    (with ``wait_all``: once every call ended, each bounded by its replica's timeout).

    The calls still running are handed to ``background`` (or awaited when it is full).
    If the caller is cancelled, its running calls are handed over as well.
    """
    tasks: dict[asyncio.Future[T], str] = {
        asyncio.ensure_future(call): name for name, call in calls.items()
    }
    outcome: Outcome[T] = Outcome()
    allowed_failures = len(tasks) if wait_all else len(tasks) - need
    pending: set[asyncio.Future[T]] = set(tasks)
    try:
        while pending and (
            wait_all or (len(outcome.results) < need and len(outcome.errors) <= allowed_failures)
        ):
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                _record(outcome, tasks[task], task)
        if pending and background.full:
            done, pending = await asyncio.wait(pending)
            for task in done:
                _record(outcome, tasks[task], task)
    finally:
        for task in pending:
            background.adopt(task, f"{what} on {tasks[task]}")
    outcome.pending = tuple(tasks[task] for task in pending)
    return outcome


def _record(outcome: Outcome[T], name: str, task: asyncio.Future[T]) -> None:
    if task.cancelled():
        outcome.errors[name] = asyncio.CancelledError()
        return
    exc = task.exception()
    if exc is None:
        outcome.results[name] = task.result()
    else:
        outcome.errors[name] = exc


async def gather_all(calls: Iterable[Awaitable[T]]) -> list[T]:
    """Run calls concurrently and return their results in order. If one fails, the
    others are still awaited (each is bounded by its replica's timeout), so none goes on
    writing unseen and none is cut off half-way; then the first error is raised. If the
    caller is cancelled, the calls are cancelled too."""
    tasks = [asyncio.ensure_future(call) for call in calls]
    if not tasks:
        return []
    try:
        await asyncio.wait(tasks)
    except BaseException:  # the caller was cancelled: so are its calls
        for task in tasks:
            task.cancel()
        raise
    for task in tasks:
        error = None if task.cancelled() else task.exception()
        if error is not None:
            raise error
    return [task.result() for task in tasks]


def require_read(
    outcome: Outcome[Any], quorum: int, store: str, operation: str, key: str | None
) -> None:
    """Raise unless ``quorum`` replicas answered a read.

    Raises:
        QuorumUnavailableError: Too few answered.
        ValidationError: A replica refused the request itself (re-raised as is).
    """
    if len(outcome.results) >= quorum:
        return
    _raise_deterministic(outcome)
    failed = tuple(sorted((*outcome.errors, *outcome.pending)))
    total = len(outcome.results) + len(failed)
    raise QuorumUnavailableError(
        f"{len(outcome.results)} of {total} replicas answered; the read quorum is "
        f"{quorum} (failed: {', '.join(failed)})",
        required=quorum,
        acknowledged=len(outcome.results),
        failed=failed,
        backend=store,
        operation=operation,
        key=key,
    ) from _first_error(outcome)


def require_write(
    outcome: Outcome[Any], quorum: int, store: str, operation: str, key: str | None
) -> None:
    """Raise unless ``quorum`` replicas took a write.

    Raises:
        QuorumUnavailableError: No replica took it, and none may have (every failure
            happened before anything was sent).
        QuorumUnknownOutcomeError: Some took it, or may have, fewer than the quorum.
        ValidationError: A replica refused the request itself (re-raised as is, as is
            any error that is not a store error).
    """
    if len(outcome.results) >= quorum:
        return
    _raise_deterministic(outcome)
    failed = tuple(sorted((*outcome.errors, *outcome.pending)))
    maybe_written = bool(outcome.results or outcome.pending) or any(
        not isinstance(exc, StoreUnavailableError) for exc in outcome.errors.values()
    )
    error = QuorumUnknownOutcomeError if maybe_written else QuorumUnavailableError
    total = len(outcome.results) + len(failed)
    raise error(
        f"{len(outcome.results)} of {total} replicas took the write; the write quorum is "
        f"{quorum} (failed: {', '.join(failed)})",
        required=quorum,
        acknowledged=len(outcome.results),
        failed=failed,
        backend=store,
        operation=operation,
        key=key,
    ) from _first_error(outcome)


def _first_error(outcome: Outcome[Any]) -> BaseException | None:
    return next(iter(outcome.errors.values()), None)


def _raise_deterministic(outcome: Outcome[Any]) -> None:
    """Re-raise an error that says the request itself is wrong (not the replicas), or
    that is no store error at all (a bug is not a quorum failure)."""
    for exc in outcome.errors.values():
        if isinstance(exc, (ValidationError, SerializationError)):
            raise exc
        if isinstance(exc, Exception) and not isinstance(exc, StoreError):
            raise exc
