"""One route spread over several stores: strategies, the sharded store, rebalancing.

```python
from polystore.sharding import HashShardStrategy, ShardedStore

store = ShardedStore({"a": store_a, "b": store_b, "c": store_c}, HashShardStrategy())
await store.save("user:1", {"name": "Ada"})
await store.add_shard("d", store_d)
report = await store.rebalance()
```
"""

from polystore.errors import CrossShardError
from polystore.sharding.rebalance import RebalanceReport, move_key
from polystore.sharding.store import ShardedDataStore, ShardedStore
from polystore.sharding.strategies import (
    HashShardStrategy,
    RangeShardStrategy,
    ShardStrategy,
    strategy_from_spec,
)
from polystore.sharding.topology import ShardMap, TopologyRecord

__all__ = [
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
