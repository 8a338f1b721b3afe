"""Value objects shared by every store: capabilities, entries, versions, health."""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import NewType, TypeAlias

__all__ = [
    "TTL",
    "Capabilities",
    "Entry",
    "Health",
    "JSONInput",
    "JSONValue",
    "Scalar",
    "Version",
]

JSONValue: TypeAlias = bool | int | float | str | list["JSONValue"] | dict[str, "JSONValue"] | None
"""A value a store returns: anything JSON can represent, as dicts and lists."""

JSONInput: TypeAlias = (
    bool | int | float | str | Sequence["JSONInput"] | Mapping[str, "JSONInput"] | None
)
"""A value a store accepts: like :data:`JSONValue`, with any mapping or sequence
(read-only types, so ``dict[str, str]`` is accepted). Tuples come back as lists."""

Scalar: TypeAlias = bool | int | float | str | None
"""A value allowed in a ``find`` equality filter."""

TTL: TypeAlias = float | timedelta
"""A time to live: seconds (``900``, ``0.5``) or a :class:`~datetime.timedelta`."""

Version = NewType("Version", str)
"""An opaque version token (an ETag). Every write produces a new one."""


class Capabilities(enum.Flag):
    """What a store guarantees. A store declares only what it passes in the conformance kit.

    Combine with ``|`` and test with ``in``::

        if Capabilities.TTL in store.capabilities: ...
    """

    NONE = 0
    TTL = enum.auto()
    """Entries expire; expired entries are never returned."""
    CAS = enum.auto()
    """Compare-and-set (``if_version``) and create-only (``if_absent``) in one round trip."""
    TRANSACTIONS = enum.auto()
    """Atomic multi-key writes within one store."""
    QUERY = enum.auto()
    """``find`` with equality filters on top-level fields."""
    SCAN = enum.auto()
    """Streaming key iteration with a server cursor."""
    DURABLE = enum.auto()
    """An acknowledged write survives a process or server restart."""
    SHARED = enum.auto()
    """Data is visible to other processes."""

    @classmethod
    def parse(cls, names: Iterable[str]) -> Capabilities:
        """Build flags from names such as ``["ttl", "cas"]`` (case-insensitive).

        Raises:
            ValueError: A name is not a capability.
        """
        result = cls.NONE
        for name in names:
            member = cls.__members__.get(name.strip().upper())
            if member is None or member is cls.NONE:
                known = ", ".join(n.lower() for n in cls.__members__ if n != "NONE")
                raise ValueError(f"unknown capability {name!r}; known: {known}")
            result |= member
        return result

    def names(self) -> tuple[str, ...]:
        """The lower-case names of the flags set, in declaration order."""
        return tuple(
            name.lower()
            for name, member in type(self).__members__.items()
            if member.value and member in self
        )


@dataclass(frozen=True, slots=True)
class Entry:
    """A stored value with its bookkeeping.

    Attributes:
        key: The key within the store's namespace.
        value: The JSON value.
        version: The version token of this write.
        expires_at: When the entry expires (UTC), or ``None``.
    """

    key: str
    value: JSONValue
    version: Version
    expires_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Health:
    """The result of a health check.

    Attributes:
        ok: Whether the store answered correctly.
        backend: Name of the backend checked.
        latency_ms: Round-trip time of the check, in milliseconds.
        detail: Extra information (server version, error message), never a secret.
    """

    ok: bool
    backend: str
    latency_ms: float
    detail: str = ""
