"""Checking concurrent histories of single-key calls against a sequential model.

A history is linearizable when each operation can be given one instant between its call
and its return such that, taken in the order of those instants, every result is what a
single-threaded key-value store would have answered. Keys are independent, so each key's
history is checked alone (Wing & Gong's search: try each operation no other pending one
finished before, apply it to the model, recurse; states already seen are skipped).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass, field

from polystore.errors import AlreadyExistsError, ConflictError
from polystore.types import Entry, JSONValue, Version

__all__ = ["Op", "Recorder", "check_key", "linearizable"]

State = tuple[JSONValue, Version] | None
"""The model's state of one key: absent, or its value and version."""


@dataclass
class Op:
    """One call as it happened: what was asked, when, and what came back.

    ``kind`` is ``"get"`` (a ``get_entry``), ``"save"``, ``"cas"`` (save with
    ``if_version``), ``"create"`` (save with ``if_absent``), ``"delete"`` or
    ``"cas_delete"``. ``result`` is the returned value, or the exception raised.
    """

    kind: str
    key: str
    start: float
    end: float = 0.0
    value: JSONValue = None
    if_version: Version | None = None
    result: object = None


def _step(state: State, op: Op) -> tuple[bool, State]:
    """Whether ``op``'s result fits ``state``, and the state after it."""
    result = op.result
    if op.kind == "get":
        if state is None:
            return result is None, state
        return isinstance(result, Entry) and (result.value, result.version) == state, state
    if op.kind == "save":
        return isinstance(result, str), (op.value, Version(str(result)))
    if op.kind == "cas":
        if state is not None and state[1] == op.if_version:
            return isinstance(result, str), (op.value, Version(str(result)))
        return isinstance(result, ConflictError), state
    if op.kind == "create":
        if state is None:
            return isinstance(result, str), (op.value, Version(str(result)))
        return isinstance(result, AlreadyExistsError), state
    if op.kind == "delete":
        return result is (state is not None), None
    if op.kind == "cas_delete":
        if state is not None and state[1] == op.if_version:
            return result is True, None
        return isinstance(result, ConflictError), state
    raise ValueError(f"unknown operation kind {op.kind!r}")


def _frozen(state: State) -> object:
    return None if state is None else (repr(state[0]), state[1])


def check_key(ops: Sequence[Op], initial: State = None) -> bool:
    """Whether one key's history is linearizable from ``initial``."""
    ops = sorted(ops, key=lambda op: op.start)
    full = (1 << len(ops)) - 1
    seen: set[tuple[int, object]] = set()
    stack: list[tuple[int, State]] = [(0, initial)]
    while stack:
        done, state = stack.pop()
        if done == full:
            return True
        mark = (done, _frozen(state))
        if mark in seen:
            continue
        seen.add(mark)
        pending = [i for i in range(len(ops)) if not done >> i & 1]
        first_end = min(ops[i].end for i in pending)
        for i in pending:
            if ops[i].start > first_end:
                break  # sorted by start: no later one may go before the op that ended first
            fits, after = _step(state, ops[i])
            if fits:
                stack.append((done | 1 << i, after))
    return False


def linearizable(ops: Sequence[Op]) -> list[str]:
    """The keys whose history (starting absent) is not linearizable; empty when all are."""
    by_key: dict[str, list[Op]] = {}
    for op in ops:
        by_key.setdefault(op.key, []).append(op)
    return sorted(key for key, history in by_key.items() if not check_key(history))


@dataclass
class Recorder:
    """Runs calls and records them as :class:`Op` for :func:`linearizable`."""

    ops: list[Op] = field(default_factory=list)

    async def call(self, op: Op, work: Awaitable[object]) -> object:
        """Await ``work`` (a call not yet started), recording its start, end and result
        (or the conflict it raised)."""
        loop = asyncio.get_running_loop()
        op.start = loop.time()
        try:
            op.result = await work
        except ConflictError as exc:  # AlreadyExistsError too
            op.result = exc
        op.end = loop.time()
        self.ops.append(op)
        return op.result
