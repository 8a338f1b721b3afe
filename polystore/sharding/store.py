"""`ShardedStore`: one :class:`~polystore.protocol.DataStore` spread over several stores.

Each key lives on the shard its strategy names. Single-key calls go to that shard; batch
calls group their keys by shard and run the groups concurrently (results in input order);
``scan`` and ``find`` merge every shard's answer. Capabilities are the intersection of
the shards'. With one shard and no migration under way, every call is handed straight to
that shard.

While a topology change is being applied (:meth:`ShardedStore.rebalance`), writes go to
the new owner, reads try the new owner and then the previous one, deletes remove the key
from both, and conditional writes first move the key to its new owner.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from functools import reduce
from typing import TypeVar

from polystore.base import check_write_flags
from polystore.codecs import JsonCodec
from polystore.errors import (
    ConfigurationError,
    SerializationError,
    UnsupportedOperationError,
    ValidationError,
)
from polystore.protocol import DataStore, DataStoreTransaction
from polystore.sharding.rebalance import Rebalancer, RebalanceReport, move_key
from polystore.sharding.strategies import HashShardStrategy, ShardStrategy
from polystore.sharding.topology import ShardMap, TopologyRecord
from polystore.sharding.transaction import sharded_transaction
from polystore.types import TTL, Capabilities, Entry, Health, JSONInput, JSONValue, Scalar, Version
from polystore.validation import (
    validate_batch_size,
    validate_key,
    validate_keys,
    validate_limit,
    validate_prefix,
    validate_ttl,
    validate_where,
)

__all__ = ["ShardedDataStore", "ShardedStore"]

T = TypeVar("T")
_CONCURRENCY = 64
Progress = Callable[[RebalanceReport], None]


async def gather_all(aws: Iterable[Awaitable[T]]) -> list[T]:
    """Await every call (none is abandoned half-way), then raise the first error, if any."""
    results = await asyncio.gather(*aws, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return results  # type: ignore[return-value]  # no exception is left in the list


class ShardedStore:
    """A store whose keys are spread over ``shards`` by ``strategy``.

    Args:
        shards: Shard id -> store. Any mix of backends; every id the strategy (or the
            stored shard map) names must be here.
        strategy: Who owns a key; :class:`HashShardStrategy` over ``shards`` by default.
        name: The store's name (for messages); ``sharded(a,b,...)`` by default.
        topology: Where the shard map is kept so several processes agree on it; without
            one, the map lives in this object only.

    Raises:
        ConfigurationError: No shards, or the strategy names a shard not given.
    """

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
        return f"<ShardedStore {self.name!r} {self.strategy!r} epoch={self._map.epoch}>"

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

    async def refresh(self) -> ShardMap:
        """Read the shard map from the topology record now (no-op without one)."""
        if self.topology is not None:
            async with self._refresh_lock:
                self._apply(await self.topology.load(ShardMap(self.target)))
                self._refresh_at = time.monotonic() + self.topology.refresh_interval
        return self._map

    async def _maybe_refresh(self) -> None:
        if self._refresh_at <= time.monotonic():
            await self.refresh()

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

    # -- single keys --------------------------------------------------------------------

    def _route(self, key: str) -> tuple[DataStore, DataStore | None]:
        """The owner's store and, while the key may sit elsewhere, its previous store."""
        validate_key(key)
        owner = self._owner(key)
        if self._previous is not None:
            before = self._previous(key)
            if before != owner:
                return self._stores[owner], self._stores[before]
        return self._stores[owner], None

    async def get(self, key: str) -> JSONValue | None:
        """Return the value stored under ``key``, or ``None``."""
        if self.topology is not None:
            await self._maybe_refresh()
        single = self._single
        if single is not None:
            return await single.get(key)
        store, before = self._route(key)
        if before is None:
            return await store.get(key)
        entry = await self._entry_moving(key, store, before)
        return None if entry is None else entry.value

    async def get_entry(self, key: str) -> Entry | None:
        """Return value, version and expiry of ``key``, or ``None``."""
        if self.topology is not None:
            await self._maybe_refresh()
        single = self._single
        if single is not None:
            return await single.get_entry(key)
        store, before = self._route(key)
        if before is None:
            return await store.get_entry(key)
        return await self._entry_moving(key, store, before)

    async def _entry_moving(self, key: str, store: DataStore, before: DataStore) -> Entry | None:
        entry = await store.get_entry(key)
        return entry if entry is not None else await before.get_entry(key)

    async def exists(self, key: str) -> bool:
        """Return whether ``key`` holds a live entry."""
        if self.topology is not None:
            await self._maybe_refresh()
        single = self._single
        if single is not None:
            return await single.exists(key)
        store, before = self._route(key)
        if await store.exists(key):
            return True
        return before is not None and await before.exists(key)

    async def save(
        self,
        key: str,
        value: JSONInput,
        *,
        ttl: TTL | None = None,
        if_version: Version | None = None,
        if_absent: bool = False,
    ) -> Version:
        """Store ``value`` under ``key`` on its shard; return the new version.

        During a migration a conditional write first moves the key to its new owner; a
        version read before that move no longer matches (``ConflictError``: re-read).
        """
        if self.topology is not None:
            await self._maybe_refresh()
        single = self._single
        if single is not None:
            return await single.save(
                key, value, ttl=ttl, if_version=if_version, if_absent=if_absent
            )
        store, before = self._route(key)
        validate_ttl(ttl)
        check_write_flags(if_version, if_absent)
        if before is not None and (if_version is not None or if_absent):
            self._require(Capabilities.CAS, "save")
            moved = await move_key(key, before, store)
            if moved is not None and if_version == moved[0]:
                if_version = moved[1]
        return await store.save(key, value, ttl=ttl, if_version=if_version, if_absent=if_absent)

    async def delete(self, key: str, *, if_version: Version | None = None) -> bool:
        """Delete ``key`` (from its previous shard too, during a migration)."""
        if self.topology is not None:
            await self._maybe_refresh()
        single = self._single
        if single is not None:
            return await single.delete(key, if_version=if_version)
        store, before = self._route(key)
        check_write_flags(if_version, False)
        if before is None:
            return await store.delete(key, if_version=if_version)
        if if_version is not None:
            self._require(Capabilities.CAS, "delete")
            moved = await move_key(key, before, store)
            if moved is not None and if_version == moved[0]:
                if_version = moved[1]
            return await store.delete(key, if_version=if_version)
        existed = await store.delete(key)
        return await before.delete(key) or existed

    # -- batches ------------------------------------------------------------------------

    def _group(self, keys: Sequence[str]) -> dict[str, list[int]]:
        groups: dict[str, list[int]] = {}
        owner = self._owner
        for index, key in enumerate(keys):
            shard = owner(key)
            found = groups.get(shard)
            if found is None:
                groups[shard] = [index]
            else:
                found.append(index)
        return groups

    async def get_many(self, keys: Sequence[str]) -> list[JSONValue | None]:
        """Return the values of ``keys`` in the same order; shards are asked concurrently."""
        if self.topology is not None:
            await self._maybe_refresh()
        single = self._single
        if single is not None:
            return await single.get_many(keys)
        checked = _check_keys(keys)
        if not checked:
            return []
        if self._previous is not None:
            return await self._bounded(self.get, checked)
        groups = self._group(checked)
        if len(groups) == 1:
            return await self._stores[next(iter(groups))].get_many(checked)
        parts = await gather_all(
            self._stores[shard].get_many([checked[i] for i in indexes])
            for shard, indexes in groups.items()
        )
        out: list[JSONValue | None] = [None] * len(checked)
        for indexes, values in zip(groups.values(), parts, strict=True):
            for index, value in zip(indexes, values, strict=True):
                out[index] = value
        return out

    async def _bounded(self, call: Callable[[str], Awaitable[T]], keys: list[str]) -> list[T]:
        limit = asyncio.Semaphore(_CONCURRENCY)

        async def one(key: str) -> T:
            async with limit:
                return await call(key)

        return await gather_all(one(key) for key in keys)

    async def save_many(
        self,
        items: Mapping[str, JSONInput] | Iterable[tuple[str, JSONInput]],
        *,
        ttl: TTL | None = None,
    ) -> list[Version]:
        """Store several values; return their versions in input order.

        Every key and value is checked before any shard is written, so a bad one leaves
        every shard untouched.
        """
        if self.topology is not None:
            await self._maybe_refresh()
        single = self._single
        if single is not None:
            return await single.save_many(items, ttl=ttl)
        if validate_ttl(ttl) is not None:
            self._require(Capabilities.TTL, "save_many")
        keys, values = _split_items(items)
        if not keys:
            return []
        groups = self._group(keys)
        if len(groups) == 1:
            store = self._stores[next(iter(groups))]
            return await store.save_many(zip(keys, values, strict=True), ttl=ttl)
        self._check_values(keys, values)
        parts = await gather_all(
            self._stores[shard].save_many([(keys[i], values[i]) for i in indexes], ttl=ttl)
            for shard, indexes in groups.items()
        )
        out: list[Version] = [Version("")] * len(keys)
        for indexes, versions in zip(groups.values(), parts, strict=True):
            for index, version in zip(indexes, versions, strict=True):
                out[index] = version
        return out

    def _check_values(self, keys: list[str], values: list[JSONInput]) -> None:
        codec = JsonCodec()
        limits = [getattr(self._stores[i], "max_value_bytes", None) for i in self._stores]
        limit = min((n for n in limits if isinstance(n, int)), default=None)
        try:
            encoded = codec.encode_many(values)
        except SerializationError as exc:
            key = next(
                (k for k, v in zip(keys, values, strict=True) if not _encodes(codec, v)), None
            )
            raise SerializationError(
                exc.message, backend=self.name, operation="save_many", key=key
            ) from exc
        if limit is not None:
            for key, data in zip(keys, encoded, strict=True):
                if len(data) > limit:
                    raise ValidationError(
                        f"value is {len(data)} bytes encoded; the limit is {limit}",
                        backend=self.name,
                        operation="save_many",
                        key=key,
                    )

    async def delete_many(self, keys: Sequence[str]) -> int:
        """Delete several keys; return how many existed (summed over the shards)."""
        if self.topology is not None:
            await self._maybe_refresh()
        single = self._single
        if single is not None:
            return await single.delete_many(keys)
        checked = list(dict.fromkeys(_check_keys(keys)))
        if not checked:
            return 0
        if self._previous is not None:
            return sum(await self._bounded(self.delete, checked))
        groups = self._group(checked)
        counts = await gather_all(
            self._stores[shard].delete_many([checked[i] for i in indexes])
            for shard, indexes in groups.items()
        )
        return sum(counts)

    # -- scan, find, transactions, health ------------------------------------------------

    def scan(self, *, prefix: str = "", batch_size: int = 500) -> AsyncIterator[str]:
        """Stream the keys starting with ``prefix`` from every shard, each key once."""
        validate_prefix(prefix)
        validate_batch_size(batch_size)
        self._require(Capabilities.SCAN, "scan")
        single = self._single
        if single is not None and self.topology is None:
            return single.scan(prefix=prefix, batch_size=batch_size)
        return self._scan(prefix, batch_size)

    def _owns(self, shard_map: ShardMap, shard: str, key: str) -> bool | None:
        """True: ``shard`` owns ``key``; None: it held it before and may still; else False."""
        try:
            if shard_map.current.shard_for(key) == shard:
                return True
            if shard_map.previous is not None and shard_map.previous.shard_for(key) == shard:
                return None
        except ValidationError:  # outside every range: unreachable, not listed
            pass
        return False

    async def _scan(self, prefix: str, batch_size: int) -> AsyncIterator[str]:
        await self._maybe_refresh()
        shard_map = self._map
        for shard in shard_map.shard_ids():
            waiting: list[str] = []
            async for key in self._stores[shard].scan(prefix=prefix, batch_size=batch_size):
                owned = self._owns(shard_map, shard, key)
                if owned:
                    yield key
                elif owned is None:
                    waiting.append(key)
                    if len(waiting) >= batch_size:
                        for found in await self._not_moved(shard_map, waiting):
                            yield found
                        waiting = []
            for found in await self._not_moved(shard_map, waiting):
                yield found

    async def _not_moved(self, shard_map: ShardMap, keys: list[str]) -> list[str]:
        """The keys (held by their previous owner) that their current owner lacks."""
        owner = shard_map.current.shard_for
        present = await gather_all(self._stores[owner(k)].exists(k) for k in keys)
        return [k for k, there in zip(keys, present, strict=True) if not there]

    async def find(self, where: Mapping[str, Scalar], *, limit: int | None = None) -> list[Entry]:
        """Entries whose top-level fields equal ``where``'s values, from every shard, by key."""
        checked = validate_where(where)
        checked_limit = validate_limit(limit)
        self._require(Capabilities.QUERY, "find")
        await self._maybe_refresh()
        single = self._single
        if single is not None:
            return await single.find(checked, limit=checked_limit)
        shard_map = self._map
        ids = shard_map.shard_ids()
        per_shard = None if shard_map.migrating else checked_limit
        answers = await gather_all(self._stores[i].find(checked, limit=per_shard) for i in ids)
        found: dict[str, Entry] = {}
        waiting: list[Entry] = []
        for shard, entries in zip(ids, answers, strict=True):
            for entry in entries:
                owned = self._owns(shard_map, shard, entry.key)
                if owned:
                    found[entry.key] = entry
                elif owned is None:
                    waiting.append(entry)
        if waiting:
            keep = set(await self._not_moved(shard_map, [e.key for e in waiting]))
            for entry in waiting:
                if entry.key in keep:
                    found.setdefault(entry.key, entry)
        ordered = [found[key] for key in sorted(found)]
        return ordered if checked_limit is None else ordered[:checked_limit]

    def transaction(self) -> AbstractAsyncContextManager[DataStoreTransaction]:
        """Atomic writes on one shard; a key of a second shard raises ``CrossShardError``.

        The transaction binds to the shard of the first key it touches and opens that
        shard's own transaction; touching a key of another shard raises
        :class:`~polystore.errors.CrossShardError` before anything is staged, and leaving
        the block with it rolls back what was staged.
        """
        self._require(Capabilities.TRANSACTIONS, "transaction")
        return sharded_transaction(self)

    async def health(self) -> Health:
        """Every shard's health: ok only if all are; latency of the slowest."""
        ids = self._map.shard_ids()
        checks = await gather_all(self._stores[i].health() for i in ids)
        failing = [
            f"{i}: {h.detail or 'not ok'}" for i, h in zip(ids, checks, strict=True) if not h.ok
        ]
        return Health(
            ok=not failing,
            backend=self.name,
            latency_ms=max(h.latency_ms for h in checks),
            detail="; ".join(failing) or f"{len(ids)} shards",
        )

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
        self._require(Capabilities.CAS | Capabilities.SCAN, "rebalance")
        report = await Rebalancer(self._stores, shard_map, shard_map.current).run(progress)
        if shard_map.migrating:
            settled = shard_map.settled()
            if self.topology is not None:
                await self.topology.publish(settled)
            self._apply(settled)
        report.epoch = self._map.epoch
        return report


ShardedDataStore = ShardedStore
"""The reference design's name for :class:`ShardedStore`."""


def _check_keys(keys: object) -> list[str]:
    if isinstance(keys, (str, bytes)) or not isinstance(keys, Iterable):
        raise ValidationError("keys must be a sequence of str, not a single str")
    checked = list(keys)
    validate_keys(checked)
    return checked


def _split_items(
    items: Mapping[str, JSONInput] | Iterable[tuple[str, JSONInput]],
) -> tuple[list[str], list[JSONInput]]:
    if isinstance(items, Mapping):
        keys = list(items)
        validate_keys(keys)
        return keys, list(items.values())
    keys, values, seen = [], [], set()
    for pair in items:
        try:
            key, value = pair
        except (TypeError, ValueError):
            raise ValidationError("save_many items must be (key, value) pairs") from None
        validate_key(key)
        if key in seen:
            raise ValidationError("save_many got the same key twice", key=key)
        seen.add(key)
        keys.append(key)
        values.append(value)
    return keys, values


def _encodes(codec: JsonCodec, value: JSONInput) -> bool:
    try:
        codec.encode(value)
    except SerializationError:
        return False
    return True
