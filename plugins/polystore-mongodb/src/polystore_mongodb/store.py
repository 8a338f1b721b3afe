"""The store of the ``mongodb`` backend: one namespace, one collection."""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import AsyncIterator, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import TYPE_CHECKING

import pymongo
from pymongo import ASCENDING, ReplaceOne

from polystore import StoreError
from polystore.spi import (
    BaseStore,
    Capabilities,
    DataStoreTransaction,
    Entry,
    Health,
    JSONValue,
    ReadResult,
    Scalar,
    Version,
    WriteOp,
    WriteResult,
    new_version,
    new_versions,
    remaining,
)
from polystore_mongodb import coalesced
from polystore_mongodb.documents import (
    EXPIRES,
    VERSION,
    find_filter,
    is_live,
    key_range,
    live_filter,
    make_document,
    read_value,
    utcnow,
)
from polystore_mongodb.errors import MongoErrors
from polystore_mongodb.operations import Collection, read_entry, remove, write
from polystore_mongodb.transaction import run_transaction

if TYPE_CHECKING:
    from polystore_mongodb.backend import MongoBackend

__all__ = ["MongoDBStore"]

_BY_KEY = [("_id", ASCENDING)]
_SELECTION_CHECK = 0.5  # pymongo.common.MIN_HEARTBEAT_INTERVAL: server selection wakes this often
_ONLY_EXPIRY = {EXPIRES: True}
_ONLY_KEY = {"_id": True}


def _chunks(keys: list[str], size: int) -> list[list[str]]:
    return [keys[start : start + size] for start in range(0, len(keys), size)]


class MongoDBStore(BaseStore):
    """One namespace of a :class:`~polystore_mongodb.MongoBackend`, in its own collection.

    Every operation is one round trip (batches: one per ``keys_per_query`` keys); the TTL index
    is created on the first write. See ``docs/backends/mongodb.md`` for the layout.

    Attributes:
        namespace: The namespace name.
        collection_name: The MongoDB collection holding it.
    """

    def __init__(self, backend: MongoBackend, namespace: str, capabilities: Capabilities) -> None:
        super().__init__(
            f"{backend.name}/{namespace}",
            capabilities,
            retry=backend.retry,
            max_value_bytes=backend.settings.max_value_bytes,
            timeout=backend.settings.timeout,
            coalesce=backend.settings.coalesce,
            coalesce_max_batch=backend.settings.coalesce_max_batch,
        )
        self.namespace = namespace
        self.collection_name = backend.collection_name(namespace)
        self._backend = backend
        self._keys_per_query = backend.settings.keys_per_query
        self._collection: Collection | None = None
        self._indexed = False
        self._index_lock = asyncio.Lock()

    # -- collection handles -------------------------------------------------------------

    async def collection(self) -> Collection:
        """The collection of this namespace (opens the backend if needed)."""
        collection = self._collection
        if collection is None:
            database = await self._backend.database()
            collection = self._collection = database[self.collection_name]
        return collection

    async def _writable(self) -> Collection:
        if self._indexed and self._collection is not None:
            return self._collection
        return await self.ensure_indexes()

    async def ensure_indexes(self) -> Collection:
        """Create the TTL index on ``exp`` once (idempotent; also on the server side)."""
        collection = await self.collection()
        async with self._index_lock:
            if not self._indexed:
                with MongoErrors(self.name, "create_index"):
                    await collection.create_index(EXPIRES, expireAfterSeconds=0)
                self._indexed = True
        return collection

    @contextlib.contextmanager
    def _write_budget(self) -> Iterator[None]:
        """Give PyMongo less than what is left of the call's timeout for a write, so that
        its own timeout (which knows whether the write was sent) ends the call first.

        PyMongo notices the end of server selection only every half second, so the
        margin is that long (or half the time left, when less is left).
        """
        timeout = self._backend.settings.timeout
        if timeout is None:
            yield
            return
        left = remaining(timeout)
        with pymongo.timeout(max(left - _SELECTION_CHECK, left / 2)):
            yield

    # -- single keys --------------------------------------------------------------------

    async def _get_entry(self, key: str) -> Entry | None:
        collection = await self.collection()
        with MongoErrors(self.name, "get", key):
            return await read_entry(collection, key)

    async def _get(self, key: str) -> JSONValue | None:
        collection = self._collection  # the hot path: no extra coroutine once opened
        if collection is None:
            collection = await self.collection()
        with MongoErrors(self.name, "get", key):
            document = await collection.find_one({"_id": key})
        if document is None:
            return None
        expires = document.get(EXPIRES)
        if expires is not None and expires <= utcnow():
            return None
        return read_value(document)

    async def _exists(self, key: str) -> bool:
        collection = await self.collection()
        with MongoErrors(self.name, "exists", key):
            document = await collection.find_one({"_id": key}, _ONLY_EXPIRY)
        return document is not None and is_live(document)

    async def _save(
        self,
        key: str,
        value: JSONValue,
        data: bytes,
        ttl: float | None,
        if_version: Version | None,
        if_absent: bool,
    ) -> Version:
        collection = await self._writable()
        version = new_version()
        document = make_document(value, data, version, ttl)
        with self._write_budget(), MongoErrors(self.name, "save", key, write=True):
            await write(collection, self.name, key, document, if_version, if_absent)
        return version

    async def _delete(self, key: str, if_version: Version | None) -> bool:
        collection = await self.collection()
        with self._write_budget(), MongoErrors(self.name, "delete", key, write=True):
            return await remove(collection, self.name, key, if_version)

    # -- batches ------------------------------------------------------------------------

    async def _get_many(self, keys: list[str]) -> list[JSONValue | None]:
        collection = await self.collection()
        found: dict[str, JSONValue] = {}
        for chunk in _chunks(list(dict.fromkeys(keys)), self._keys_per_query):
            with MongoErrors(self.name, "get_many"):
                documents = await collection.find({"_id": {"$in": chunk}}).to_list()
            now = utcnow()
            for document in documents:
                expires = document.get(EXPIRES)
                if expires is None or expires > now:
                    found[document["_id"]] = read_value(document)
        return [found.get(key) for key in keys]

    async def _save_many(
        self, items: list[tuple[str, JSONValue, bytes]], ttl: float | None
    ) -> list[Version]:
        collection = await self._writable()
        now = utcnow()
        versions = new_versions(len(items))
        size = self._keys_per_query
        for start in range(0, len(items), size):
            requests = [
                ReplaceOne({"_id": key}, make_document(value, data, version, ttl, now), upsert=True)
                for (key, value, data), version in zip(
                    items[start : start + size], versions[start : start + size], strict=True
                )
            ]
            with self._write_budget(), MongoErrors(self.name, "save_many", write=True):
                await collection.bulk_write(requests, ordered=False)
        return versions

    async def _delete_many(self, keys: list[str]) -> int:
        collection = await self.collection()
        count = 0
        for chunk in _chunks(keys, self._keys_per_query):
            with self._write_budget(), MongoErrors(self.name, "delete_many", write=True):
                query = {"_id": {"$in": chunk}, **live_filter(utcnow())}
                result = await collection.delete_many(query)
            count += result.deleted_count
        return count

    # -- coalesced single-key calls (see polystore.coalesce) ----------------------------

    async def _get_entries_batch(self, keys: list[str]) -> list[ReadResult]:
        return await coalesced.read_batch(self, await self.collection(), keys)

    async def _write_batch(self, batch: list[WriteOp]) -> list[WriteResult]:
        collection = await self._writable()
        with self._write_budget():
            return await coalesced.write_batch(self, collection, batch)

    # -- scan and find ------------------------------------------------------------------

    async def _scan_page(self, prefix: str, after: str | None, size: int) -> list[str]:
        collection = await self.collection()
        query = {"_id": key_range(prefix, after), **live_filter(utcnow())}
        with MongoErrors(self.name, "scan"):
            documents = await collection.find(
                query, _ONLY_KEY, sort=_BY_KEY, limit=size, batch_size=size
            ).to_list()
        return [document["_id"] for document in documents]

    async def _scan(self, prefix: str, batch_size: int) -> AsyncIterator[str]:
        # Keyset pagination on the _id index: each page is one query that resumes after
        # the last key seen, so no server cursor outlives a page and memory stays flat.
        after: str | None = None
        while True:
            try:
                keys = await self._scan_page(prefix, after, batch_size)
            except StoreError as exc:
                keys = await self.retry_policy.retry(
                    exc, functools.partial(self._scan_page, prefix, after, batch_size)
                )
            for key in keys:
                yield key
            if len(keys) < batch_size:
                return
            after = keys[-1]

    async def _find(self, where: dict[str, Scalar], limit: int | None) -> list[Entry]:
        collection = await self.collection()
        query = find_filter(where, utcnow())
        with MongoErrors(self.name, "find"):
            documents = await collection.find(query, sort=_BY_KEY, limit=limit or 0).to_list()
        return [
            Entry(d["_id"], read_value(d), Version(d.get(VERSION) or ""), d.get(EXPIRES))
            for d in documents
        ]

    # -- transactions -------------------------------------------------------------------

    def transaction(self) -> AbstractAsyncContextManager[DataStoreTransaction]:
        """Group writes atomically in a MongoDB multi-document transaction.

        Needs a replica set or sharded cluster (the ``TRANSACTIONS`` capability, known
        once the backend is open; an unopened backend is opened first).

        Raises:
            UnsupportedOperationError: The server does not support transactions.
        """
        if self._backend.is_open:
            return super().transaction()
        scope = self._open_then_transaction()
        bound = self.call_timeout
        # Opening and beginning spend one timeout.
        return scope if bound is None else bound.transaction(scope)

    @asynccontextmanager
    async def _open_then_transaction(self) -> AsyncIterator[DataStoreTransaction]:
        await self._backend.database()
        self._require(Capabilities.TRANSACTIONS, "transaction")
        async with self._transaction() as tx:
            yield tx

    def _transaction(self) -> AbstractAsyncContextManager[DataStoreTransaction]:
        return run_transaction(self, self._backend)

    async def _health(self) -> Health:
        return await self._backend.health()
