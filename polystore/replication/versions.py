"""The replica versions a store last saw, so that most merges take one round trip.

A merge into a replica reads the replica's entry, then writes the join with a
compare-and-set on the version it read (:mod:`~polystore.replication.replica`). When this
store itself wrote or read the key on that replica last, it already knows the version
and what it holds; if the incoming write supersedes all of that, the merge writes at
once with that version. If anything changed the key in between, the compare-and-set
fails and the merge falls back to reading. So the cache can only save round trips, never
change what is written.

Only the bookkeeping of each write is kept (stamps, clocks, tombstone flags, expiry),
never values: about 200 bytes per key and replica, for at most ``size`` keys per store
(least recently used dropped first).
"""

from __future__ import annotations

from collections import OrderedDict

from polystore.replication.envelope import Sibling, State
from polystore.types import Version

__all__ = ["VersionCache"]


class VersionCache:
    """``(replica, key) -> (version, state without values)``, bounded to ``size`` keys."""

    def __init__(self, size: int = 10_000) -> None:
        self.size = size
        self._seen: OrderedDict[tuple[str, str], tuple[Version, State]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._seen)

    def get(self, replica: str, key: str) -> tuple[Version, State] | None:
        """The version and state last seen on ``replica`` for ``key``, if remembered."""
        return self._seen.get((replica, key))

    def put(self, replica: str, key: str, version: Version, state: State) -> None:
        """Remember that ``replica`` holds ``state`` at ``version``."""
        if not self.size:
            return
        slot = (replica, key)
        known = self._seen.get(slot)
        if known is not None and known[0] == version:
            self._seen.move_to_end(slot)
            return
        self._seen[slot] = (
            version,
            tuple(Sibling(s.stamp, None, s.deleted, s.expires_ms, s.clock) for s in state),
        )
        self._seen.move_to_end(slot)
        while len(self._seen) > self.size:
            self._seen.popitem(last=False)

    def forget(self, replica: str, key: str) -> None:
        """Drop what is remembered of ``key`` on ``replica``."""
        self._seen.pop((replica, key), None)
