"""The limit for the ``mongodb`` backend: PyMongo's ``AsyncMongoClient`` doing the same work.

One document per key as polystore lays it out (``{_id: key, v: value, ver: version,
exp: expiry}``, with a TTL index on ``exp``); reads skip expired documents; a batch read
is one ``$in`` query and a batch write one unordered ``bulk_write``; compare-and-set is a
replace filtered on ``{_id, ver}``. Writes use polystore's default write concern
(``w="majority", j=True``), its 10 s operation timeout, and the pool has its default size.
"""

from __future__ import annotations

import os
from contextlib import AsyncExitStack
from datetime import datetime, timedelta, timezone
from typing import Any

from pymongo import AsyncMongoClient, ReplaceOne
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.write_concern import WriteConcern

from polystore.bench import Ops

DURABLE = WriteConcern(w="majority", j=True)


class RawMongo:
    def __init__(self, collection: AsyncCollection[dict[str, Any]], ttl: float | None) -> None:
        self.coll = collection
        self.ttl = None if ttl is None else timedelta(seconds=ttl)

    def _document(self, value: Any) -> dict[str, Any]:
        doc = {"v": value, "ver": os.urandom(8).hex()}
        if self.ttl is not None:
            doc["exp"] = datetime.now(timezone.utc) + self.ttl
        return doc

    async def get(self, key: str) -> Any:
        doc = await self.coll.find_one({"_id": key})
        if doc is None or ("exp" in doc and doc["exp"] <= datetime.now(timezone.utc)):
            return None
        return doc["v"]

    async def save(self, key: str, value: Any) -> None:
        await self.coll.replace_one({"_id": key}, self._document(value), upsert=True)

    async def get_many(self, keys: list[str]) -> list[Any]:
        now = datetime.now(timezone.utc)
        found = {
            doc["_id"]: doc["v"]
            async for doc in self.coll.find({"_id": {"$in": keys}})
            if "exp" not in doc or doc["exp"] > now
        }
        return [found.get(key) for key in keys]

    async def save_many(self, items: dict[str, Any]) -> None:
        requests = [
            ReplaceOne({"_id": key}, self._document(value), upsert=True)
            for key, value in items.items()
        ]
        await self.coll.bulk_write(requests, ordered=False)

    async def delete_many(self, keys: list[str]) -> None:
        await self.coll.delete_many({"_id": {"$in": keys}})

    async def increment(self, key: str) -> None:
        while True:
            doc = await self.coll.find_one({"_id": key})
            assert doc is not None
            value = doc["v"]
            value["n"] += 1
            result = await self.coll.replace_one(
                {"_id": key, "ver": doc["ver"]}, self._document(value)
            )
            if result.matched_count:
                return


def durable_client(url: str) -> AsyncMongoClient[dict[str, Any]]:
    """A client with polystore's defaults: writes wait for a majority's journal, and every
    operation has a 10 s deadline."""
    return AsyncMongoClient(url, w="majority", journal=True, tz_aware=True, timeoutMS=10_000)


async def open_raw_mongodb(
    stack: AsyncExitStack, url: str, *, collection: str, ttl: float | None = None
) -> Ops:
    """Connect with PyMongo and return the raw :class:`Ops` on collection ``collection``."""
    client = durable_client(url)
    stack.push_async_callback(client.close)
    coll = client["bench"].get_collection(collection, write_concern=DURABLE)
    await coll.create_index("exp", expireAfterSeconds=0)  # the server reaps expired entries
    raw = RawMongo(coll, ttl)
    return Ops(raw.get, raw.save, raw.get_many, raw.save_many, raw.increment, raw.delete_many)
