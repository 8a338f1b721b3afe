"""Multi-master replication: one route copied to several stores, with quorums and clocks.

See ``docs/replication.md`` for the model, the clocks and the failure scenarios.
"""

from __future__ import annotations

from polystore.replication.aliases import (
    ConflictResolutionStrategy,
    LastWriteWinsStrategy,
    MultiMasterReplicator,
    VectorClockStrategy,
)
from polystore.replication.hlc import HybridLogicalClock, Timestamp
from polystore.replication.repair import RepairReport
from polystore.replication.resolvers import LastWriteWins, Resolution, Resolver, VectorClock
from polystore.replication.store import ReplicatedStore

__all__ = [
    "ConflictResolutionStrategy",
    "HybridLogicalClock",
    "LastWriteWins",
    "LastWriteWinsStrategy",
    "MultiMasterReplicator",
    "RepairReport",
    "ReplicatedStore",
    "Resolution",
    "Resolver",
    "Timestamp",
    "VectorClock",
    "VectorClockStrategy",
]
