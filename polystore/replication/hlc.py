"""Hybrid logical clocks: wall-clock time that never runs backwards and follows causality.

A timestamp is ``(physical milliseconds, logical counter)`` packed in one integer
(``ms << 16 | counter``), paired with the writer's node id to break ties. A clock's
:meth:`~HybridLogicalClock.now` is always later than every timestamp it produced or
:meth:`~HybridLogicalClock.observe`\\ d before: a node that has read a value writes a later
one, whatever its own wall clock says.

A node whose wall clock runs far ahead would drag every clock that reads its values
with it. So :meth:`~HybridLogicalClock.observe` refuses a timestamp more than
``max_drift`` seconds ahead of the local wall clock: it logs a warning and does not
follow it (the local clock keeps its own time; a value from such a node may keep winning
over later writes until the local clock catches up, which the warning says).
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass

from polystore.errors import ConfigurationError

__all__ = ["LOGICAL_BITS", "HybridLogicalClock", "Timestamp", "check_node_id"]

logger = logging.getLogger("polystore.replication")

LOGICAL_BITS = 16
"""Bits of the logical counter within a packed timestamp."""

_LOGICAL_MASK = (1 << LOGICAL_BITS) - 1
_NODE_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


def check_node_id(node_id: object) -> str:
    """Return ``node_id`` if it is 1 to 64 letters, digits, ``_`` or ``-``.

    Node ids become field names inside stored envelopes, so they are restricted to a
    set every backend stores unchanged.

    Raises:
        ConfigurationError: The id is not such a string.
    """
    if not isinstance(node_id, str) or not _NODE_ID.fullmatch(node_id):
        raise ConfigurationError(
            f"node_id must be 1 to 64 letters, digits, '_' or '-'; got {node_id!r}"
        )
    return node_id


@dataclass(frozen=True, slots=True, order=True)
class Timestamp:
    """A hybrid logical clock reading, ordered by time, then node id.

    Attributes:
        packed: ``physical_ms << 16 | logical``.
        node: The id of the node that produced it.
    """

    packed: int
    node: str

    @property
    def physical_ms(self) -> int:
        """Milliseconds since the epoch."""
        return self.packed >> LOGICAL_BITS

    @property
    def logical(self) -> int:
        """The counter that orders events within one millisecond."""
        return self.packed & _LOGICAL_MASK

    def token(self) -> str:
        """A string that sorts like the timestamp (fixed-width hex, then the node id)."""
        return f"{self.packed:016x}-{self.node}"


class HybridLogicalClock:
    """The clock of one node.

    Args:
        node_id: This node's id (1 to 64 letters, digits, ``_`` or ``-``).
        clock: Wall-clock seconds since the epoch (``time.time``; tests inject skew).
        max_drift: How many seconds ahead of the local wall clock an observed timestamp
            may be and still be followed.
    """

    __slots__ = ("_clock", "_last", "max_drift", "node_id", "refused")

    def __init__(
        self,
        node_id: str,
        *,
        clock: Callable[[], float] = time.time,
        max_drift: float = 60.0,
    ) -> None:
        self.node_id = check_node_id(node_id)
        if not isinstance(max_drift, (int, float)) or not max_drift > 0:
            raise ConfigurationError(f"max_drift must be a positive number; got {max_drift!r}")
        self._clock = clock
        self.max_drift = float(max_drift)
        self._last = 0
        self.refused = 0
        """How many observed timestamps were refused for running too far ahead."""

    def __repr__(self) -> str:
        return f"<HybridLogicalClock {self.node_id!r} last={self._last:#x}>"

    @property
    def last(self) -> Timestamp:
        """The latest timestamp this clock produced or followed."""
        return Timestamp(self._last, self.node_id)

    def _wall(self) -> int:
        return int(self._clock() * 1000) << LOGICAL_BITS

    def now(self) -> Timestamp:
        """A timestamp later than every one this clock produced or observed."""
        wall = self._wall()
        self._last = wall if wall > self._last else self._last + 1
        return Timestamp(self._last, self.node_id)

    def observe(self, seen: Timestamp | int) -> bool:
        """Follow a timestamp read from a replica, so later writes order after it.

        Returns:
            False if it ran more than ``max_drift`` ahead of the local clock and was
            refused (logged as a warning), True otherwise.
        """
        packed = seen.packed if isinstance(seen, Timestamp) else seen
        if packed <= self._last:
            return True
        ahead_ms = (packed >> LOGICAL_BITS) - (self._wall() >> LOGICAL_BITS)
        if ahead_ms > self.max_drift * 1000:
            self.refused += 1
            writer = seen.node if isinstance(seen, Timestamp) else "?"
            logger.warning(
                "clock of node %s refuses a timestamp from node %s that is %.1f s ahead of "
                "its wall clock (max_drift %.1f s); a wall clock is wrong, and values that "
                "node wrote may win over later writes until the clocks agree",
                self.node_id,
                writer,
                ahead_ms / 1000,
                self.max_drift,
            )
            return False
        self._last = packed
        return True
