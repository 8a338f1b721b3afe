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

from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from time import monotonic

from polystore.base import check_write_flags
from polystore.protocol import DataStore, DataStoreTransaction
from polystore.sharding._batching import (
    bounded,
    check_keys,
    check_values,
    gather_all,
    group_by,
    split_items,
)
from polystore.sharding._merging import find_shards, scan_shards
from polystore.sharding.rebalance import move_key
from polystore.sharding.routing import ShardRouting
from polystore.sharding.transaction import sharded_transaction
from polystore.types import TTL, Capabilities, Entry, Health, JSONInput, JSONValue, Scalar, Version
from polystore.validation import (
    validate_batch_size,
    validate_limit,
    validate_prefix,
    validate_ttl,
    validate_where,
)

__all__ = ["ShardedDataStore", "ShardedStore"]


class ShardedStore(ShardRouting):
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

    async def get(self, key: str) -> JSONValue | None:
        """Return the value stored under ``key``, or ``None``."""
        if self._refresh_at <= monotonic():
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
        if self._refresh_at <= monotonic():
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
        if self._refresh_at <= monotonic():
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
        if self._refresh_at <= monotonic():
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
        if self._refresh_at <= monotonic():
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

    async def get_many(self, keys: Sequence[str]) -> list[JSONValue | None]:
        """Return the values of ``keys`` in the same order; shards are asked concurrently."""
        if self._refresh_at <= monotonic():
            await self._maybe_refresh()
        single = self._single
        if single is not None:
            return await single.get_many(keys)
        checked = check_keys(keys)
        if not checked:
            return []
        if self._previous is not None:
            return await bounded(self.get, checked)
        groups = group_by(self._owner, checked)
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
        if self._refresh_at <= monotonic():
            await self._maybe_refresh()
        single = self._single
        if single is not None:
            return await single.save_many(items, ttl=ttl)
        if validate_ttl(ttl) is not None:
            self._require(Capabilities.TTL, "save_many")
        keys, values = split_items(items)
        if not keys:
            return []
        groups = group_by(self._owner, keys)
        if len(groups) == 1:
            store = self._stores[next(iter(groups))]
            return await store.save_many(zip(keys, values, strict=True), ttl=ttl)
        limits = [getattr(s, "max_value_bytes", None) for s in self._stores.values()]
        limit = min((n for n in limits if isinstance(n, int)), default=None)
        check_values(keys, values, limit=limit, name=self.name)
        parts = await gather_all(
            self._stores[shard].save_many([(keys[i], values[i]) for i in indexes], ttl=ttl)
            for shard, indexes in groups.items()
        )
        out: list[Version] = [Version("")] * len(keys)
        for indexes, versions in zip(groups.values(), parts, strict=True):
            for index, version in zip(indexes, versions, strict=True):
                out[index] = version
        return out

    async def delete_many(self, keys: Sequence[str]) -> int:
        """Delete several keys; return how many existed (summed over the shards)."""
        if self._refresh_at <= monotonic():
            await self._maybe_refresh()
        single = self._single
        if single is not None:
            return await single.delete_many(keys)
        checked = list(dict.fromkeys(check_keys(keys)))
        if not checked:
            return 0
        if self._previous is not None:
            return sum(await bounded(self.delete, checked))
        groups = group_by(self._owner, checked)
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

    async def _scan(self, prefix: str, batch_size: int) -> AsyncIterator[str]:
        await self._maybe_refresh()
        async for key in scan_shards(self._stores, self._map, prefix, batch_size):
            yield key

    async def find(self, where: Mapping[str, Scalar], *, limit: int | None = None) -> list[Entry]:
        """Entries whose top-level fields equal ``where``'s values, from every shard, by key."""
        checked = validate_where(where)
        checked_limit = validate_limit(limit)
        self._require(Capabilities.QUERY, "find")
        await self._maybe_refresh()
        single = self._single
        if single is not None:
            return await single.find(checked, limit=checked_limit)
        return await find_shards(self._stores, self._map, checked, checked_limit)

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


ShardedDataStore = ShardedStore
"""The reference design's name for :class:`ShardedStore`."""
