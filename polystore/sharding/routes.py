"""Sharded routes from settings: ``[routes.NAME] shards = [...]``.

```toml
[routes.profiles]
shards = ["docs1", "docs2", "docs3"]   # backend names; the route's namespace in each
strategy = "hash"                      # or "range" with ranges = [["a", "m", "docs1"], ...]
```

The shard map of a sharded route is kept in the first shard's backend, in the namespace
``<namespace>.shard-map``, so every process using the same settings finds it.
"""

from __future__ import annotations

from collections.abc import Mapping

from polystore.protocol import DataStore
from polystore.settings import RouteConfig
from polystore.sharding.store import ShardedStore
from polystore.sharding.strategies import HashShardStrategy, RangeShardStrategy, ShardStrategy
from polystore.sharding.topology import TopologyRecord
from polystore.types import Capabilities

__all__ = ["SHARD_MAP_SUFFIX", "build_sharded_store", "strategy_for"]

SHARD_MAP_SUFFIX = ".shard-map"
"""Appended to a sharded route's namespace to name where its shard map lives."""


def strategy_for(route: RouteConfig) -> ShardStrategy:
    """The strategy a sharded route's settings describe.

    Raises:
        ConfigurationError: The ranges overlap or are empty.
    """
    shards = tuple(route.shards or ())
    if route.strategy == "range":
        return RangeShardStrategy(
            (start or None, end or None, shard) for start, end, shard in route.ranges or ()
        )
    return HashShardStrategy(shards, weights=route.weights)


def build_sharded_store(
    name: str,
    route: RouteConfig,
    shards: Mapping[str, DataStore],
    map_store: DataStore | None,
) -> ShardedStore:
    """The sharded store of route ``name``.

    Args:
        name: The route's name.
        route: Its settings.
        shards: Backend name -> the route's store on that backend.
        map_store: Where the shard map is kept; without ``CAS`` (or ``None``) the map lives
            in this process only.
    """
    topology = None
    if map_store is not None and Capabilities.CAS in map_store.capabilities:
        topology = TopologyRecord(map_store, refresh_interval=route.shard_map_refresh)
    return ShardedStore(shards, strategy_for(route), name=f"{name} (sharded)", topology=topology)
