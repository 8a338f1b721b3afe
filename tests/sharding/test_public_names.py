"""The public names of ``polystore.sharding`` are pinned."""

from __future__ import annotations

import polystore
import polystore.sharding
from polystore.errors import UnsupportedOperationError

EXPECTED = [
    "CrossShardError",
    "HashShardStrategy",
    "RangeShardStrategy",
    "RebalanceReport",
    "ShardMap",
    "ShardStrategy",
    "ShardedDataStore",
    "ShardedStore",
    "TopologyRecord",
    "move_key",
    "strategy_from_spec",
]


def test_sharding_names_are_pinned() -> None:
    assert polystore.sharding.__all__ == EXPECTED
    for name in EXPECTED:
        assert getattr(polystore.sharding, name) is not None


def test_reference_names_are_aliases() -> None:
    assert polystore.sharding.ShardedDataStore is polystore.sharding.ShardedStore


def test_cross_shard_error_is_an_unsupported_operation_exported_at_the_top() -> None:
    assert issubclass(polystore.CrossShardError, UnsupportedOperationError)
    assert polystore.sharding.CrossShardError is polystore.CrossShardError
