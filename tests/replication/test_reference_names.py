"""The public names of polystore.replication and the reference design's aliases."""

from __future__ import annotations

import uuid

import pytest

import polystore.replication
from polystore.backends.memory import MemoryBackend, MemorySettings
from polystore.replication import (
    ConflictResolutionStrategy,
    LastWriteWins,
    LastWriteWinsStrategy,
    MultiMasterReplicator,
    ReplicatedStore,
    Resolver,
    VectorClock,
    VectorClockStrategy,
)

EXPECTED = [
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


def test_public_names_are_pinned_sorted_and_importable() -> None:
    assert polystore.replication.__all__ == EXPECTED
    for name in EXPECTED:
        assert getattr(polystore.replication, name) is not None


def test_reference_strategy_names_are_the_resolvers() -> None:
    assert ConflictResolutionStrategy is Resolver
    assert LastWriteWinsStrategy is LastWriteWins
    assert VectorClockStrategy is VectorClock


@pytest.mark.asyncio
async def test_the_replicator_writes_everywhere_and_resolves_a_conflict_on_request() -> None:
    backends = [MemoryBackend(MemorySettings()) for _ in range(3)]
    namespace = f"t{uuid.uuid4().hex[:8]}"
    for backend in backends:
        await backend.open()
    nodes = [backend.namespace(namespace) for backend in backends]
    replicator = MultiMasterReplicator(nodes, LastWriteWinsStrategy(), write_quorum=3)
    assert isinstance(replicator, ReplicatedStore)

    await replicator.replicate_write("k", "first")
    await nodes[2].delete("k")  # one node lost it
    resolved = await replicator.detect_and_resolve_conflicts("k")

    assert resolved == "first"
    assert [await node.exists("k") for node in nodes] == [True] * 3  # repaired at once
    for backend in backends:
        await backend.aclose()
