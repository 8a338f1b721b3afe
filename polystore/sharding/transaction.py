"""Transactions on a sharded store: atomic within the one shard every key lives on."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import TYPE_CHECKING

from polystore.errors import CrossShardError
from polystore.protocol import DataStoreTransaction
from polystore.sharding.rebalance import move_key
from polystore.types import TTL, Entry, JSONInput, JSONValue, Version

if TYPE_CHECKING:
    from polystore.sharding.store import ShardedStore

__all__ = ["ShardedTransaction", "sharded_transaction"]


class ShardedTransaction:
    """Binds to the shard of the first key it touches and runs that shard's transaction.

    A key of another shard raises :class:`~polystore.errors.CrossShardError` before it is
    staged; leaving the ``async with`` block with that error rolls back what was staged,
    so nothing is written.
    """

    def __init__(self, sharded: ShardedStore, stack: AsyncExitStack) -> None:
        self._sharded = sharded
        self._stack = stack
        self._shard: str | None = None
        self._tx: DataStoreTransaction | None = None

    async def _bind(self, key: str) -> DataStoreTransaction:
        sharded = self._sharded
        store, before = sharded._route(key)
        shard = sharded.shard_for(key)
        if self._tx is None:
            if before is not None:
                await move_key(key, before, store)  # settle it on its owner first
            self._tx = await self._stack.enter_async_context(store.transaction())
            self._shard = shard
            return self._tx
        if shard != self._shard:
            raise CrossShardError(
                f"this transaction runs on shard {self._shard!r}; the key lives on shard "
                f"{shard!r} (use a hash tag such as 'order:{{42}}:line' to keep related keys "
                "on one shard)",
                backend=sharded.name,
                operation="transaction",
                key=key,
            )
        if before is not None and await before.exists(key):
            raise CrossShardError(
                "the key still sits on its previous shard; run rebalance() first",
                backend=sharded.name,
                operation="transaction",
                key=key,
            )
        return self._tx

    async def get(self, key: str) -> JSONValue | None:
        """Read a value, seeing this transaction's own writes."""
        return await (await self._bind(key)).get(key)

    async def get_entry(self, key: str) -> Entry | None:
        """Read an entry, seeing this transaction's own writes."""
        return await (await self._bind(key)).get_entry(key)

    async def save(
        self,
        key: str,
        value: JSONInput,
        *,
        ttl: TTL | None = None,
        if_version: Version | None = None,
        if_absent: bool = False,
    ) -> Version:
        """Stage a write on the transaction's shard."""
        tx = await self._bind(key)
        return await tx.save(key, value, ttl=ttl, if_version=if_version, if_absent=if_absent)

    async def delete(self, key: str, *, if_version: Version | None = None) -> bool:
        """Stage a delete on the transaction's shard."""
        return await (await self._bind(key)).delete(key, if_version=if_version)


@asynccontextmanager
async def sharded_transaction(sharded: ShardedStore) -> AsyncIterator[ShardedTransaction]:
    """Open a :class:`ShardedTransaction`; the shard's transaction commits or rolls back
    with the block."""
    async with AsyncExitStack() as stack:
        yield ShardedTransaction(sharded, stack)
