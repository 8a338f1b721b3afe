"""The shard map of a sharded store, who owns a key, and changing the map.

:class:`ShardRouting` holds the shards, the map in force (current strategy, and the
previous one while a move is under way) and, with a :class:`TopologyRecord`, keeps the
map in step with other processes. It answers who owns a key, and applies topology changes
(:meth:`~ShardRouting.add_shard`, :meth:`~ShardRouting.remove_shard`,
:meth:`~ShardRouting.rebalance`). :class:`~polystore.sharding.ShardedStore` adds the
data operations.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Mapping
from functools import reduce

from polystore.errors import (
    ConfigurationError,
    ConflictError,
    UnsupportedOperationError,
)
from polystore.protocol import DataStore
from polystore.sharding._batching import gather_all
from polystore.sharding.rebalance import Rebalancer, RebalanceReport
from polystore.sharding.strategies import HashShardStrategy, ShardStrategy
from polystore.sharding.topology import ShardMap, TopologyRecord
from polystore.types import Capabilities, JSONValue
from polystore.validation import validate_key

__all__ = ["Progress", "ShardRouting"]

Progress = Callable[[RebalanceReport], None]
_DIRECT = ("get", "get_entry", "save", "delete", "exists", "get_many", "save_many", "delete_many")


class ShardRouting:
    """The shards of a sharded store and the map that places keys on them (see
    :class:`~polystore.sharding.ShardedStore` for the arguments)."""

    def __init__(
        self,
        shards: Mapping[str, DataStore],
        strategy: ShardStrategy | None = None,
        *,
        name: str | None = None,
        topology: TopologyRecord | None = None,
    ) -> None:
        if not shards:
            raise ConfigurationError("a sharded store needs at least one shard")
        self._stores: dict[str, DataStore] = dict(shards)
        if strategy is None:
            strategy = HashShardStrategy()
        if not strategy.shard_ids:
            strategy = strategy.with_shards(list(self._stores))
        self._check_known(strategy.shard_ids)
        self.name: str = name or f"sharded({','.join(strategy.shard_ids)})"
        self.target: ShardStrategy = strategy
        self.topology = topology
        self._refresh_at = 0.0 if topology is not None else float("inf")
        self._refresh_lock = asyncio.Lock()
        self._apply(ShardMap(strategy))

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} {self.strategy!r} epoch={self._map.epoch}>"

    # -- the shard map ------------------------------------------------------------------

    def _check_known(self, ids: Iterable[str]) -> None:
        unknown = [i for i in ids if i not in self._stores]
        if unknown:
            raise ConfigurationError(
                f"the shard map names shards {unknown} that this store was not given "
                f"(known: {sorted(self._stores)})",
                backend=getattr(self, "name", None),
            )

    def _apply(self, shard_map: ShardMap) -> None:
        self._check_known(shard_map.shard_ids())
        self._map = shard_map
        self._owner = shard_map.current.shard_for
        previous = shard_map.previous
        self._previous = None if previous is None else previous.shard_for
        ids = shard_map.current.shard_ids
        whole = isinstance(shard_map.current, HashShardStrategy)  # ranges may leave gaps
        alone = len(ids) == 1 and previous is None and whole
        self._single = self._stores[ids[0]] if alone else None
        for attr in _DIRECT:
            self.__dict__.pop(attr, None)
        if self._single is not None and self.topology is None:
            # One shard, nothing moving, no stored map to follow: the shard's own methods
            # serve these calls, with no frame of ours in between.
            for attr in _DIRECT:
                self.__dict__[attr] = getattr(self._single, attr)

    async def refresh(self) -> ShardMap:
        """Read the shard map from the topology record now (no-op without one)."""
        if self.topology is not None:
            async with self._refresh_lock:
                self._apply(await self.topology.load(ShardMap(self.target)))
                self._refresh_at = time.monotonic() + self.topology.refresh_interval
        return self._map

    async def _maybe_refresh(self) -> None:
        """Re-read the map if it is due; concurrent callers wait for one read."""
        if self._refresh_at <= time.monotonic() and self.topology is not None:
            async with self._refresh_lock:
                if self._refresh_at <= time.monotonic():  # not re-read while we waited
                    self._apply(await self.topology.load(ShardMap(self.target)))
                    self._refresh_at = time.monotonic() + self.topology.refresh_interval

    @property
    def shard_map(self) -> ShardMap:
        """The shard map this process follows now."""
        return self._map

    @property
    def strategy(self) -> ShardStrategy:
        """The strategy new writes follow."""
        return self._map.current

    @property
    def shards(self) -> Mapping[str, DataStore]:
        """The attached shards, by id."""
        return {i: self._stores[i] for i in self._map.shard_ids()}

    @property
    def capabilities(self) -> Capabilities:
        """What every shard guarantees (the intersection)."""
        stores = [self._stores[i] for i in self._map.shard_ids()]
        return reduce(lambda a, b: a & b, (s.capabilities for s in stores))

    @capabilities.setter
    def capabilities(self, value: Capabilities) -> None:
        raise AttributeError("a sharded store's capabilities are its shards' (the intersection)")

    def _require(self, capability: Capabilities, operation: str) -> None:
        if capability not in self.capabilities:
            raise UnsupportedOperationError(
                f"not every shard supports {capability.names()[0]}",
                backend=self.name,
                operation=operation,
            )

    def shard_for(self, key: str) -> str:
        """The id of the shard that owns ``key`` (where new writes of it go).

        Raises:
            ValidationError: Bad key, or a key no range holds.
        """
        return self._owner(validate_key(key))

    def get_shard_id(self, key: str) -> str:
        """The reference design's name for :meth:`shard_for`."""
        return self.shard_for(key)

    async def get_from_all_shards(self, key: str) -> dict[str, JSONValue | None]:
        """What every shard holds under ``key`` (for diagnosis), by shard id."""
        validate_key(key)
        await self._maybe_refresh()
        ids = self._map.shard_ids()
        values = await gather_all(self._stores[i].get(key) for i in ids)
        return dict(zip(ids, values, strict=True))

    def _route(self, key: str) -> tuple[DataStore, DataStore | None]:
        """The owner's store and, while the key may sit elsewhere, its previous store."""
        validate_key(key)
        owner = self._owner(key)
        if self._previous is not None:
            before = self._previous(key)
            if before != owner:
                return self._stores[owner], self._stores[before]
        return self._stores[owner], None

    # -- topology changes -----------------------------------------------------------------

    async def add_shard(
        self, shard_id: str, store: DataStore, *, strategy: ShardStrategy | None = None
    ) -> ShardMap:
        """Attach a shard: new writes of the keys it now owns go to it at once.

        Keys already stored stay readable where they are until :meth:`rebalance` moves
        them. A migration still pending is completed first.

        Args:
            shard_id: The new shard's id.
            store: Its store.
            strategy: The strategy with the new shard (needed for ranges); by default the
                current strategy over the shards plus this one.

        Raises:
            ConfigurationError: ``shard_id`` is already attached.
        """
        await self.refresh()
        if shard_id in self._map.shard_ids():
            raise ConfigurationError(f"shard {shard_id!r} is already attached", backend=self.name)
        self._stores[shard_id] = store
        ids = [*self._map.current.shard_ids, shard_id]
        return await self._change(strategy or self._map.current.with_shards(ids))

    async def remove_shard(
        self,
        shard_id: str,
        *,
        strategy: ShardStrategy | None = None,
        progress: Progress | None = None,
    ) -> RebalanceReport:
        """Move every key of ``shard_id`` to its new owner, then detach the shard.

        Raises:
            ConfigurationError: ``shard_id`` is not attached or is the only shard.
        """
        await self.refresh()
        ids = list(self._map.current.shard_ids)
        if shard_id not in ids:
            raise ConfigurationError(f"shard {shard_id!r} is not attached", backend=self.name)
        if len(ids) == 1:
            raise ConfigurationError("cannot remove the only shard", backend=self.name)
        ids.remove(shard_id)
        await self._change(strategy or self._map.current.with_shards(ids))
        report = await self.rebalance(progress=progress)
        self._stores.pop(shard_id, None)
        return report

    async def _change(self, strategy: ShardStrategy) -> ShardMap:
        if self._map.migrating:
            await self.rebalance()
        self._check_known(strategy.shard_ids)
        self.target = strategy
        new = self._map.moved_to(strategy)
        if self.topology is not None:
            await self.topology.publish(new)
        self._apply(new)
        return new

    async def count_keys(self) -> int:
        """How many keys a :meth:`rebalance` would scan (a key scan of every shard it
        visits): the total behind a progress bar."""
        await self.refresh()
        ids = dict.fromkeys([*self._map.shard_ids(), *self.target.shard_ids])
        total = 0
        for shard in ids:
            async for _ in self._stores[shard].scan(batch_size=1000):
                total += 1
        return total

    async def rebalance(
        self, *, progress: Progress | None = None, dry_run: bool = False
    ) -> RebalanceReport:
        """Move every key that is not on its owner; then mark the map settled.

        Safe with concurrent readers and writers, resumable (running it again after a
        crash finishes the work), and a no-op when nothing is misplaced. With a topology
        record, a change made elsewhere (or the settings' strategy, if it differs from
        the stored one) is picked up first.

        Args:
            progress: Called with the running report after each batch of keys.
            dry_run: Count what would move, change nothing.
        """
        await self.refresh()
        if dry_run:
            return await Rebalancer(self._stores, self._map, self.target).run(progress, dry_run)
        if self._map.current != self.target:
            await self._change(self.target)
        shard_map = self._map
        if self.topology is not None and shard_map.migrating:
            wait = shard_map.changed_at + self.topology.refresh_interval - time.time()
            if wait > 0:
                await asyncio.sleep(wait)
        self._require(Capabilities.CAS, "rebalance")
        self._require(Capabilities.SCAN, "rebalance")
        report = await Rebalancer(self._stores, shard_map, shard_map.current).run(progress)
        if shard_map.migrating:
            await self._settle(shard_map)
        report.epoch = self._map.epoch
        return report

    async def _settle(self, shard_map: ShardMap) -> None:
        settled = shard_map.settled()
        if self.topology is None:
            self._apply(settled)
            return
        try:
            await self.topology.publish(settled)
        except ConflictError:
            # Another process changed the map meanwhile: fine if it settled this one too.
            await self.refresh()
            if self._map.migrating or self._map.current != shard_map.current:
                raise
            return
        self._apply(settled)
