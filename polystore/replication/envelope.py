"""The envelope each replica stores: the value with the metadata that orders it.

One JSON object per key, so any backend can hold a replica::

    {"~polystore": 1,
     "s": [{"t": 1234567890123456,     # hybrid logical clock, packed (ms << 16 | counter)
            "n": "node-a",             # the writer's node id
            "c": {"node-a": 1234...},  # vector clock (VectorClock resolver only)
            "d": true,                 # tombstone: the key was deleted (only when true)
            "x": 1700000000000,        # expiry, epoch ms (only with a ttl)
            "v": {...}}]}              # the caller's value (absent in a tombstone)

``s`` holds the *siblings*: one write under last-write-wins, and under vector clocks
every write that no other one supersedes. A value stored by something other than a
replicated store (no ``~polystore`` field) reads as one write older than any replicated
write, so an existing store can become a replica and its data is carried over.

The value is nested, so a replica's ``find`` on top-level fields cannot see it: a
replicated store does not offer ``find``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from polystore.errors import SerializationError
from polystore.replication.hlc import Timestamp
from polystore.types import JSONValue

__all__ = [
    "MARKER",
    "Sibling",
    "State",
    "clock_join",
    "decode",
    "descends",
    "encode",
    "parse_context",
    "render_context",
    "sort_state",
]

MARKER = "~polystore"
"""The field that marks an envelope (format version 1)."""

VectorClockMap = Mapping[str, int]

_FOREIGN = Timestamp(0, "")


@dataclass(frozen=True, slots=True)
class Sibling:
    """One write of a key, as stored in an envelope.

    Attributes:
        stamp: When it was written (hybrid logical clock) and by which node.
        value: The caller's value (``None`` in a tombstone).
        deleted: Whether this write is a delete (a tombstone).
        expires_ms: Expiry in epoch milliseconds, or ``None``.
        clock: The vector clock of the write (empty under last-write-wins).
    """

    stamp: Timestamp
    value: JSONValue = None
    deleted: bool = False
    expires_ms: int | None = None
    clock: Mapping[str, int] = field(default_factory=dict)

    def live(self, now_ms: int) -> bool:
        """Whether the write holds a value at ``now_ms`` (not deleted, not expired)."""
        return not self.deleted and (self.expires_ms is None or self.expires_ms > now_ms)

    def to_json(self) -> dict[str, JSONValue]:
        """The sibling as stored."""
        out: dict[str, JSONValue] = {"t": self.stamp.packed, "n": self.stamp.node}
        if self.clock:
            out["c"] = dict(self.clock)
        if self.deleted:
            out["d"] = True
        else:
            out["v"] = self.value
        if self.expires_ms is not None:
            out["x"] = self.expires_ms
        return out


State = tuple[Sibling, ...]
"""The siblings of one key, sorted by stamp (newest last); empty when nothing is stored."""


def encode(state: State) -> dict[str, JSONValue]:
    """The envelope of ``state``, ready to be saved on a replica."""
    return {MARKER: 1, "s": [sibling.to_json() for sibling in state]}


def decode(raw: JSONValue, *, where: str = "", key: str | None = None) -> State:
    """Read what a replica holds under a key.

    Args:
        raw: The stored value (``None`` when the key is absent, see the caveat below).
        where: The replica's name, for error messages.
        key: The key, for error messages.

    A stored JSON ``null`` without an envelope is indistinguishable from an absent key
    here; callers pass ``None`` only for absent keys.

    Raises:
        SerializationError: An envelope that is not well formed.
    """
    if raw is None:
        return ()
    if not isinstance(raw, dict) or MARKER not in raw:
        return (Sibling(_FOREIGN, raw),)
    try:
        return _siblings(raw)
    except (KeyError, TypeError, ValueError) as exc:
        raise SerializationError(
            f"replica holds a malformed envelope ({exc})", backend=where, key=key
        ) from exc


def _siblings(raw: dict[str, Any]) -> State:
    if raw[MARKER] != 1:
        raise ValueError(f"unknown envelope format {raw[MARKER]!r}")
    return tuple(sorted((_sibling(item) for item in raw["s"]), key=_order))


def _sibling(item: Any) -> Sibling:
    stamp = Timestamp(int(item["t"]), str(item["n"]))
    clock = item.get("c") or {}
    if not isinstance(clock, dict):
        raise TypeError("vector clock is not an object")
    expires = item.get("x")
    return Sibling(
        stamp=stamp,
        value=item.get("v"),
        deleted=bool(item.get("d", False)),
        expires_ms=None if expires is None else int(expires),
        clock={str(node): int(count) for node, count in clock.items()},
    )


def _order(sibling: Sibling) -> tuple[Timestamp, bytes]:
    # Ties between writes with equal stamps only happen for values stored without an
    # envelope; the encoded value orders them the same way on every node.
    return (sibling.stamp, orjson.dumps(sibling.value, option=orjson.OPT_SORT_KEYS))


def sort_state(siblings: Iterable[Sibling]) -> State:
    """Siblings in the canonical order (oldest first)."""
    return tuple(sorted(siblings, key=_order))


# -- vector clocks ------------------------------------------------------------------------


def descends(a: VectorClockMap, b: VectorClockMap) -> bool:
    """Whether clock ``a`` has seen everything ``b`` has (``a >= b`` entry by entry)."""
    return all(a.get(node, 0) >= count for node, count in b.items())


def clock_join(clocks: Iterable[VectorClockMap]) -> dict[str, int]:
    """The smallest clock that descends from every clock given."""
    out: dict[str, int] = {}
    for clock in clocks:
        for node, count in clock.items():
            if count > out.get(node, 0):
                out[node] = count
    return out


def render_context(clock: VectorClockMap) -> str:
    """A vector clock as a version token (``vc:node=hex,...``), sorted by node."""
    return "vc:" + ",".join(f"{node}={clock[node]:x}" for node in sorted(clock))


def parse_context(token: str) -> dict[str, int]:
    """The vector clock of a token made by :func:`render_context`.

    Raises:
        ValueError: The token is not such a token.
    """
    if not token.startswith("vc:"):
        raise ValueError("not a vector clock context")
    body = token[3:]
    if not body:
        return {}
    out: dict[str, int] = {}
    for part in body.split(","):
        node, _, count = part.partition("=")
        if not node or not count:
            raise ValueError("not a vector clock context")
        out[node] = int(count, 16)
    return out
