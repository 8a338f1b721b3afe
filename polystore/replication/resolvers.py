"""How concurrent writes of one key are ordered or combined: the resolvers.

- :class:`LastWriteWins` keeps the write with the latest hybrid logical clock stamp
  (ties broken by node id). Causality holds: a node that has read a value writes a later
  one. Concurrent writes are ordered arbitrarily but identically everywhere, so one of
  two concurrent writes is dropped; that is its contract.
- :class:`VectorClock` keeps concurrent writes as *siblings* and hands their values to
  ``merge(values) -> value``; nothing concurrent is dropped. A write made with the
  context of a read supersedes every sibling that read saw.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from polystore.errors import ConfigurationError
from polystore.replication.envelope import (
    Sibling,
    State,
    clock_join,
    descends,
    render_context,
    sort_state,
)
from polystore.types import JSONValue, Version

__all__ = ["LastWriteWins", "Resolution", "Resolver", "VectorClock"]

MergeFunction = Callable[[list[JSONValue]], Any]


@dataclass(frozen=True, slots=True)
class Resolution:
    """What a read of one key returns.

    Attributes:
        live: Whether the key holds a value (not deleted, not expired).
        value: The value (``None`` when not live).
        merged: Whether ``value`` was made by merging siblings (and should be written
            back with a clock that dominates them).
        expires_ms: Expiry of the value in epoch ms, or ``None``.
    """

    live: bool
    value: JSONValue = None
    merged: bool = False
    expires_ms: int | None = None


_ABSENT = Resolution(live=False)


class Resolver(ABC):
    """Orders or combines the writes of one key. Subclasses are stateless and pure."""

    name: str = ""
    uses_vector_clocks: bool = False

    @abstractmethod
    def join(self, states: Iterable[State]) -> State:
        """Combine what several replicas hold into what every replica should hold."""

    @abstractmethod
    def resolve(self, state: State, now_ms: int) -> Resolution:
        """The value a read of ``state`` returns at ``now_ms``."""

    @abstractmethod
    def version(self, state: State) -> Version:
        """The version token of ``state``."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class LastWriteWins(Resolver):
    """The write with the latest hybrid logical clock stamp wins; ties go to the larger
    node id. Deletes are writes too (tombstones), so a later write revives a key and an
    earlier one does not."""

    name = "lww"

    def join(self, states: Iterable[State]) -> State:
        best: Sibling | None = None
        for state in states:
            if state and (best is None or _later(state[-1], best)):
                best = state[-1]
        return () if best is None else (best,)

    def resolve(self, state: State, now_ms: int) -> Resolution:
        if not state or not state[-1].live(now_ms):
            return _ABSENT
        winner = state[-1]
        return Resolution(True, winner.value, expires_ms=winner.expires_ms)

    def version(self, state: State) -> Version:
        return Version(state[-1].stamp.token() if state else "")


def _later(a: Sibling, b: Sibling) -> bool:
    return sort_state((a, b))[-1] is a


class VectorClock(Resolver):
    """Concurrent writes are kept as siblings and merged by ``merge`` on read.

    Args:
        merge: Called with the live sibling values (oldest first, the same order on every
            node) when a read finds more than one; returns the value the read gives. The
            merged value is written back with a clock that dominates the siblings.

    A tombstone concurrent with a value does not hide it: a delete that did not see a
    write loses to it (the write is not dropped).
    """

    name = "vector"
    uses_vector_clocks = True

    def __init__(self, merge: MergeFunction) -> None:
        if not callable(merge):
            raise ConfigurationError(f"merge must be callable; got {merge!r}")
        self.merge = merge

    def __repr__(self) -> str:
        name = getattr(self.merge, "__qualname__", repr(self.merge))
        return f"VectorClock(merge={name})"

    def join(self, states: Iterable[State]) -> State:
        siblings: list[Sibling] = []
        for state in states:
            for candidate in state:
                if any(_covers(kept, candidate) for kept in siblings):
                    continue
                siblings = [kept for kept in siblings if not _covers(candidate, kept)]
                siblings.append(candidate)
        return sort_state(siblings)

    def resolve(self, state: State, now_ms: int) -> Resolution:
        live = [sibling for sibling in state if sibling.live(now_ms)]
        if not live:
            return _ABSENT
        expiries = [s.expires_ms for s in live]
        expires = None if None in expiries else max(e for e in expiries if e is not None)
        if len(live) == 1:
            return Resolution(True, live[0].value, expires_ms=expires)
        return Resolution(True, self.merge([s.value for s in live]), True, expires)

    def version(self, state: State) -> Version:
        return Version(render_context(context_of(state)))


def _covers(a: Sibling, b: Sibling) -> bool:
    """Whether ``a`` makes ``b`` unnecessary: ``a`` saw ``b`` (or is the same write, or
    an equal clock that orders after it)."""
    if a == b:
        return True
    if a.clock == b.clock:
        return sort_state((a, b))[-1] is a
    return descends(a.clock, b.clock)


def context_of(siblings: Sequence[Sibling]) -> dict[str, int]:
    """The vector clock that has seen every sibling given."""
    return clock_join(s.clock for s in siblings)
