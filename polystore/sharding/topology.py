"""The shard map, and where it lives so that several processes agree on it.

A :class:`ShardMap` says which strategy owns keys now (``current``) and, while a rebalance
is due or running, which one owned them before (``previous``). Writes go to the current
owner; reads try the current owner, then the previous one.

With a :class:`TopologyRecord`, the map is one JSON record in a designated store, updated
with compare-and-set and read again by every process at least every ``refresh_interval``
seconds. ``epoch`` grows by one with each change. A change is published before any key
moves, and the mover waits ``refresh_interval`` after publishing, so every live process
writes to the new owners before an old copy is removed. See ``docs/sharding.md`` for what
happens while two processes disagree.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from polystore.errors import AlreadyExistsError, ConfigurationError, ConflictError
from polystore.protocol import DataStore
from polystore.sharding.strategies import ShardStrategy, strategy_from_spec
from polystore.types import Capabilities, JSONValue, Version

__all__ = ["ShardMap", "TopologyRecord"]

DEFAULT_RECORD_KEY = "shard-map"


@dataclass(frozen=True)
class ShardMap:
    """Who owns keys now and, during a migration, who owned them before.

    Attributes:
        current: The strategy new writes follow.
        previous: The strategy before the last change, until a rebalance completes.
        epoch: Grows by one with each published change.
        changed_at: Wall-clock time (epoch seconds) of the last change.
    """

    current: ShardStrategy
    previous: ShardStrategy | None = None
    epoch: int = 0
    changed_at: float = field(default=0.0)

    @property
    def migrating(self) -> bool:
        """Whether keys may still sit on their previous owner."""
        return self.previous is not None

    def shard_ids(self) -> tuple[str, ...]:
        """Every shard the map names, current ones first."""
        ids = list(self.current.shard_ids)
        if self.previous is not None:
            ids += [i for i in self.previous.shard_ids if i not in ids]
        return tuple(ids)

    def moved_to(self, strategy: ShardStrategy) -> ShardMap:
        """The map after switching to ``strategy`` (keys still on the present owners)."""
        previous = self.previous if self.previous is not None else self.current
        return ShardMap(strategy, previous, self.epoch + 1, time.time())

    def settled(self) -> ShardMap:
        """The map once every key lives on its current owner."""
        return ShardMap(self.current, None, self.epoch + 1, time.time())

    def to_json(self) -> dict[str, JSONValue]:
        """The record's JSON form."""
        previous = None if self.previous is None else self.previous.to_spec()
        return {
            "epoch": self.epoch,
            "changed_at": self.changed_at,
            "current": self.current.to_spec(),
            "previous": previous,
        }

    @classmethod
    def from_json(cls, data: Any) -> ShardMap:
        """Read a record written by :meth:`to_json`.

        Raises:
            ConfigurationError: The record is not a shard map.
        """
        try:
            previous = data["previous"]
            return cls(
                current=strategy_from_spec(data["current"]),
                previous=None if previous is None else strategy_from_spec(previous),
                epoch=int(data["epoch"]),
                changed_at=float(data["changed_at"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigurationError(f"the stored shard map is malformed: {exc}") from exc


class TopologyRecord:
    """The shard map as one versioned record in ``store`` (which must declare ``CAS``).

    Args:
        store: Where the record lives: a store every process of the application reaches,
            outside the sharded data (e.g. its own namespace).
        key: The record's key.
        refresh_interval: Seconds between re-reads of the record by each process, and
            the wait between publishing a change and moving keys.
    """

    def __init__(
        self, store: DataStore, *, key: str = DEFAULT_RECORD_KEY, refresh_interval: float = 5.0
    ) -> None:
        if Capabilities.CAS not in store.capabilities:
            raise ConfigurationError(f"the shard map store {store.name!r} must declare CAS")
        if refresh_interval <= 0:
            raise ConfigurationError("refresh_interval must be > 0")
        self.store = store
        self.key = key
        self.refresh_interval = refresh_interval
        self._version: Version | None = None

    def __repr__(self) -> str:
        return f"<TopologyRecord {self.store.name!r} key={self.key!r}>"

    async def load(self, initial: ShardMap) -> ShardMap:
        """The stored map; ``initial`` is stored first if there is none yet."""
        entry = await self.store.get_entry(self.key)
        if entry is not None:
            self._version = entry.version
            return ShardMap.from_json(entry.value)
        try:
            self._version = await self.store.save(self.key, initial.to_json(), if_absent=True)
        except AlreadyExistsError:
            return await self.load(initial)
        return initial

    async def publish(self, new: ShardMap) -> ShardMap:
        """Store ``new`` if the record is still the one last loaded or published.

        Raises:
            ConflictError: Another process changed the map meanwhile; reload and retry.
        """
        if self._version is None:
            raise ConflictError("load the shard map before publishing a change", key=self.key)
        self._version = await self.store.save(self.key, new.to_json(), if_version=self._version)
        return new
