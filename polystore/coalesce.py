"""Coalescing: concurrent single-key calls of one store sent as one batch.

Many tasks each doing one ``get`` or ``save`` at once (web handlers, workers) cost the
raw drivers one command per call. A store that coalesces sends the single-key calls made
while others are in flight as one batched read or one batched write, the way DataLoader
and ioredis' auto-pipelining do:

- A call made while nothing of its kind (read or write) is in flight goes straight
  through, on the backend's single-key path: no timer, no added latency without
  concurrency.
- A call made while another is in flight joins the batch being formed. The batch is
  sent at the end of the current event-loop turn (one ``call_soon``), or at once when it
  reaches ``max_batch`` calls.
- Each caller gets what its own call would have returned or raised: the backend's batch
  primitive answers per item (a version, a bool, or an error such as
  :class:`~polystore.errors.ConflictError` for that item alone). Writes to one key in one
  batch are applied in call order.
- The batch runs in a task of its own: a caller that is cancelled, or whose timeout
  passes, stops waiting, and the batch goes on for the others. A batch that fails as a
  whole fails each caller with its own copy of the typed error, naming the caller's key.

A backend opts in by overriding :meth:`~polystore.base.BaseStore._get_entries_batch`
and :meth:`~polystore.base.BaseStore._write_batch` (see the plugin guide).
"""

from __future__ import annotations

import asyncio
import contextvars
import copy
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from polystore.errors import PolystoreError, StoreError, UnknownOutcomeError
from polystore.types import Entry, JSONValue, Version

__all__ = ["CoalesceStats", "Lane", "WriteOp", "WriteResult"]

Req = TypeVar("Req")
Res = TypeVar("Res")


@dataclass(frozen=True, slots=True)
class WriteOp:
    """One single-key write waiting in a batch: a save, or a delete when ``data`` is None.

    Attributes:
        key: The key written.
        value: The value saved (``None`` for a delete).
        data: The encoded value, or ``None`` for a delete.
        ttl: Seconds until expiry, or ``None``.
        if_version: Compare-and-set version, or ``None``.
        if_absent: Create-only.
    """

    key: str
    value: JSONValue
    data: bytes | None
    ttl: float | None = None
    if_version: Version | None = None
    if_absent: bool = False

    @property
    def is_delete(self) -> bool:
        """Whether this is a delete."""
        return self.data is None

    @property
    def operation(self) -> str:
        """The public operation's name: ``"save"`` or ``"delete"``."""
        return "delete" if self.data is None else "save"


WriteResult = Version | bool | StoreError
"""A batched write's answer for one item: the new version of a save, whether a delete
found a live entry, or the error of that item alone."""

ReadResult = Entry | StoreError | None
"""A batched read's answer for one key: its live entry, ``None``, or that key's error."""


@dataclass(slots=True)
class CoalesceStats:
    """What the coalescer of one store did, for observability.

    Attributes:
        direct_calls: Calls that went straight through (nothing else in flight).
        batches: Batches sent.
        batched_calls: Calls sent in those batches.
    """

    direct_calls: int = 0
    batches: int = 0
    batched_calls: int = 0

    @property
    def mean_batch_size(self) -> float:
        """Calls per batch sent (0.0 before the first batch)."""
        return self.batched_calls / self.batches if self.batches else 0.0


def _consume(future: asyncio.Future[Any]) -> None:
    # A caller that stopped waiting leaves its result unread: mark it read.
    if not future.cancelled():
        future.exception()


def for_caller(error: BaseException, operation: str, key: str, *, write: bool) -> BaseException:
    """The error one caller of a failed batch receives: its own copy, naming its key.

    A batch cut short by cancellation (the store closing) is, for a write, an unknown
    outcome.
    """
    if isinstance(error, PolystoreError):
        own = copy.copy(error)
        own.operation, own.key = operation, key
        own.args = (own._render(),)
        own.__cause__ = error.__cause__
        return own
    if write:
        unknown = UnknownOutcomeError(
            "the batch carrying this write was interrupted; it may or may not have been applied",
            operation=operation,
            key=key,
        )
        unknown.__cause__ = error
        return unknown
    return error


class Lane(Generic[Req, Res]):
    """The calls of one kind (reads or writes) of one store, and their batches.

    Args:
        send: Sends one batch; returns one result per request, in order (an exception
            instance for a request that failed alone).
        max_batch: Calls that make a batch go out at once.
        stats: Where the lane counts what it does.
        write: Whether the lane carries writes (for the error of an interrupted batch).
    """

    __slots__ = (
        "_in_flight",
        "_pending",
        "_scheduled",
        "_send",
        "_tasks",
        "max_batch",
        "stats",
        "write",
    )

    def __init__(
        self,
        send: Callable[[list[Req]], Awaitable[list[Res | StoreError]]],
        *,
        max_batch: int,
        stats: CoalesceStats,
        write: bool,
    ) -> None:
        self._send = send
        self.max_batch = max_batch
        self.stats = stats
        self.write = write
        self._in_flight = 0
        self._pending: list[tuple[Req, str, str, asyncio.Future[Res]]] = []
        self._scheduled = False
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def idle(self) -> bool:
        """Whether nothing of this kind is in flight or waiting: a call may go direct."""
        return self._in_flight == 0 and not self._pending

    def enter(self) -> None:
        """Count a direct call as in flight (pair with :meth:`leave`)."""
        self._in_flight += 1
        self.stats.direct_calls += 1

    def leave(self) -> None:
        """A direct call is done."""
        self._in_flight -= 1

    async def submit(self, request: Req, operation: str, key: str) -> Res:
        """Add ``request`` to the batch being formed and wait for its own result."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Res] = loop.create_future()
        future.add_done_callback(_consume)
        self._pending.append((request, operation, key, future))
        if len(self._pending) >= self.max_batch:
            self._flush()
        elif not self._scheduled:
            self._scheduled = True
            # Flushed after the callbacks ready now, in a context of its own (the batch
            # does not inherit this caller's deadline).
            contextvars.Context().run(loop.call_soon, self._flush)
        return await asyncio.shield(future)

    def _flush(self) -> None:
        self._scheduled = False
        batch, self._pending = self._pending, []
        if not batch:
            return
        self._in_flight += 1
        self.stats.batches += 1
        self.stats.batched_calls += len(batch)
        loop = asyncio.get_running_loop()
        task = contextvars.Context().run(loop.create_task, self._run(batch))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, batch: list[tuple[Req, str, str, asyncio.Future[Res]]]) -> None:
        try:
            results = await self._send([item[0] for item in batch])
        except BaseException as exc:
            for _, operation, key, future in batch:
                if not future.done():
                    future.set_exception(for_caller(exc, operation, key, write=self.write))
            if not isinstance(exc, Exception):
                raise
        else:
            for (_, _, _, future), result in zip(batch, results, strict=True):
                if future.done():
                    continue
                if isinstance(result, BaseException):
                    future.set_exception(result)
                else:
                    future.set_result(result)
        finally:
            self._in_flight -= 1
