"""Coalesced single-key calls of a namespace (see :mod:`polystore.coalesce`).

A batch of reads is one ``$in`` query. In a batch of writes, the plain saves go as one
unordered ``bulk_write`` of upserts; compare-and-set, create-only and deletes, whose
outcome the bulk result does not give per request, run as their own requests alongside.
A key written more than once in a batch is written in rounds, one write of it per
round, so its writes apply in call order.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from pymongo import ReplaceOne
from pymongo.errors import BulkWriteError, DuplicateKeyError

from polystore import StoreError
from polystore.spi import ReadResult, Version, WriteOp, WriteResult, new_version
from polystore_mongodb.documents import make_document, utcnow
from polystore_mongodb.errors import MongoErrors
from polystore_mongodb.operations import Collection, remove, to_entry, write

if TYPE_CHECKING:
    from polystore_mongodb.store import MongoDBStore

__all__ = ["read_batch", "write_batch"]

_DUPLICATE_KEY = 11000


async def read_batch(
    store: MongoDBStore, collection: Collection, keys: list[str]
) -> list[ReadResult]:
    """The live entries of ``keys`` (distinct), in order: one query."""
    with MongoErrors(store.name, "get_many"):
        documents = await collection.find({"_id": {"$in": keys}}).to_list()
    by_key = {document["_id"]: document for document in documents}
    return [to_entry(key, by_key.get(key)) for key in keys]


def _rounds(batch: list[WriteOp]) -> list[list[int]]:
    """Indexes of ``batch`` in rounds: each key at most once per round, in call order."""
    rounds: list[list[int]] = []
    seen: dict[str, int] = {}
    for i, op in enumerate(batch):
        level = seen.get(op.key, -1) + 1
        seen[op.key] = level
        if level == len(rounds):
            rounds.append([])
        rounds[level].append(i)
    return rounds


async def write_batch(
    store: MongoDBStore, collection: Collection, batch: list[WriteOp]
) -> list[WriteResult]:
    """Apply ``batch``; each op's own version, bool or error."""
    results: list[WriteResult | None] = [None] * len(batch)
    for indexes in _rounds(batch):
        plain = [i for i in indexes if _is_plain(batch[i])]
        others = [i for i in indexes if not _is_plain(batch[i])]
        work: list[Awaitable[None]] = [
            _single(store, collection, batch, i, results) for i in others
        ]
        if plain:
            work.append(_bulk(store, collection, batch, plain, results))
        await asyncio.gather(*work)
    return [result for result in results if result is not None]


def _is_plain(op: WriteOp) -> bool:
    return op.data is not None and op.if_version is None and not op.if_absent


async def _single(
    store: MongoDBStore,
    collection: Collection,
    batch: list[WriteOp],
    i: int,
    results: list[WriteResult | None],
) -> None:
    op = batch[i]
    try:
        with MongoErrors(store.name, op.operation, op.key, write=True):
            if op.data is None:
                results[i] = await remove(collection, store.name, op.key, op.if_version)
                return
            version = new_version()
            document = make_document(op.value, op.data, version, op.ttl)
            await write(collection, store.name, op.key, document, op.if_version, op.if_absent)
            results[i] = version
    except StoreError as exc:  # ConflictError, AlreadyExistsError, or this op's failure
        results[i] = exc


async def _bulk(
    store: MongoDBStore,
    collection: Collection,
    batch: list[WriteOp],
    indexes: list[int],
    results: list[WriteResult | None],
) -> None:
    now = utcnow()
    versions = [new_version() for _ in indexes]
    documents = [
        make_document(batch[i].value, batch[i].data or b"", version, batch[i].ttl, now)
        for i, version in zip(indexes, versions, strict=True)
    ]
    requests = [
        ReplaceOne({"_id": batch[i].key}, document, upsert=True)
        for i, document in zip(indexes, documents, strict=True)
    ]
    failed: dict[int, dict[str, object]] = {}
    with MongoErrors(store.name, "save_many", write=True):
        try:
            await collection.bulk_write(requests, ordered=False)
        except BulkWriteError as exc:
            failed = {error["index"]: error for error in exc.details.get("writeErrors", [])}
            if exc.details.get("writeConcernErrors"):
                raise
    retry: list[Callable[[], Awaitable[None]]] = []
    for n, (i, version) in enumerate(zip(indexes, versions, strict=True)):
        error = failed.get(n)
        if error is None:
            results[i] = Version(version)
        elif error.get("code") == _DUPLICATE_KEY:
            # Two upserts of a new key raced; now the document exists and this matches.
            retry.append(
                _retry_upsert(store, collection, batch[i], documents[n], version, results, i)
            )
        else:
            results[i] = _op_error(store, batch[i], error)
    for again in retry:
        await again()


def _retry_upsert(
    store: MongoDBStore,
    collection: Collection,
    op: WriteOp,
    document: dict[str, object],
    version: Version,
    results: list[WriteResult | None],
    i: int,
) -> Callable[[], Awaitable[None]]:
    async def again() -> None:
        try:
            with MongoErrors(store.name, "save", op.key, write=True):
                try:
                    await collection.replace_one({"_id": op.key}, document, upsert=True)
                except DuplicateKeyError:
                    await collection.replace_one({"_id": op.key}, document, upsert=True)
            results[i] = version
        except StoreError as exc:
            results[i] = exc

    return again


def _op_error(store: MongoDBStore, op: WriteOp, error: dict[str, object]) -> StoreError:
    """The error of one request the server refused (it was not applied)."""
    message = str(error.get("errmsg", "write refused"))
    return StoreError(
        f"mongodb refused the write: {message}",
        backend=store.name,
        operation=op.operation,
        key=op.key,
    )
