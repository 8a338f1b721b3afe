"""The reference design's names for replication, as thin aliases.

=================================  ==================================================
reference name                     here
=================================  ==================================================
``ConflictResolutionStrategy``     :class:`~polystore.replication.Resolver`
``LastWriteWinsStrategy``          :class:`~polystore.replication.LastWriteWins`
``VectorClockStrategy``            :class:`~polystore.replication.VectorClock` (the
                                   reference returned the first value; this one keeps
                                   concurrent writes and merges them)
``MultiMasterReplicator``          :class:`MultiMasterReplicator`, a
                                   :class:`~polystore.replication.ReplicatedStore`
=================================  ==================================================
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from polystore.errors import ConfigurationError
from polystore.protocol import DataStore
from polystore.replication.quorum import fan_out, gather_all
from polystore.replication.replica import merge_into, state_of
from polystore.replication.resolvers import LastWriteWins, Resolver, VectorClock
from polystore.replication.store import ReplicatedStore
from polystore.types import JSONInput, JSONValue, Version
from polystore.validation import validate_key

__all__ = [
    "ConflictResolutionStrategy",
    "LastWriteWinsStrategy",
    "MultiMasterReplicator",
    "VectorClockStrategy",
]

ConflictResolutionStrategy = Resolver
"""The reference design's name for :class:`~polystore.replication.Resolver`."""

LastWriteWinsStrategy = LastWriteWins
"""The reference design's name for :class:`~polystore.replication.LastWriteWins`."""

VectorClockStrategy = VectorClock
"""The reference design's name for :class:`~polystore.replication.VectorClock`."""


class MultiMasterReplicator(ReplicatedStore):
    """The reference design's replicator: a :class:`ReplicatedStore` with its verbs.

    Args:
        nodes: The replicas, by name, or as a sequence (named ``node0``, ``node1``, ...).
        conflict_strategy: The resolver (default :class:`LastWriteWins`).
        **options: Any other :class:`ReplicatedStore` argument (quorums, node id, ...).
    """

    def __init__(
        self,
        nodes: Mapping[str, DataStore] | Sequence[DataStore],
        conflict_strategy: Resolver | None = None,
        **options: Any,
    ) -> None:
        if isinstance(nodes, Mapping):
            named = dict(nodes)
        elif isinstance(nodes, Sequence) and not isinstance(nodes, str):
            named = {f"node{i}": node for i, node in enumerate(nodes)}
        else:
            raise ConfigurationError("nodes must be a mapping or a sequence of stores")
        super().__init__(named, resolver=conflict_strategy, **options)

    async def replicate_write(
        self, key: str, value: JSONInput, *, ttl: float | None = None
    ) -> Version:
        """Write ``value`` to every node (returns once the write quorum took it)."""
        return await self.save(key, value, ttl=ttl)

    async def detect_and_resolve_conflicts(self, key: str) -> JSONValue | None:
        """Read ``key`` from every node that answers, resolve, and bring the stale ones in
        line before returning (unlike a read, which repairs in the background).

        Returns:
            The resolved value, or ``None`` if the key holds none.

        Raises:
            QuorumUnavailableError: Fewer than the read quorum answered.
        """
        validate_key(key)
        outcome = await fan_out(
            {name: replica.get_entry(key) for name, replica in self.replicas.items()},
            len(self.replicas),
            self.background,
            f"conflict check of {key!r}",
            wait_all=True,
        )
        self._check_read(outcome, "detect_and_resolve_conflicts", key)
        states = {name: state_of(entry, name, key) for name, entry in outcome.results.items()}
        joined = self.resolver.join(states.values())
        self._observe(key, joined)
        resolution = self.resolver.resolve(joined, self.now_ms())
        if resolution.merged:
            joined = self._write_back_merge(key, joined, resolution.value, resolution.expires_ms)
        await gather_all(
            merge_into(
                self.replicas[name],
                name,
                key,
                joined,
                self.resolver,
                self.now_ms,
                known=outcome.results[name] if not resolution.merged else False,
            )
            for name, state in states.items()
            if state != joined or resolution.merged
        )
        return resolution.value if resolution.live else None
