"""Single-key reads and writes shared by the store and its transactions.

Each is one round trip. Driver exceptions propagate; callers translate them with
:class:`~polystore_mongodb.errors.MongoErrors` (whether a lost connection means an unknown
outcome depends on the caller: inside a transaction it does not).
"""

from __future__ import annotations

from typing import Any

from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError

from polystore import ConflictError
from polystore.spi import Entry, Version
from polystore_mongodb.documents import (
    EXPIRES,
    VERSION,
    expired_filter,
    is_live,
    live_filter,
    read_value,
    utcnow,
)

__all__ = ["Collection", "Document", "read_entry", "remove", "to_entry", "write"]

Document = dict[str, Any]
Collection = AsyncCollection[Document]


def to_entry(key: str, document: Document | None) -> Entry | None:
    """The entry of a fetched document, or ``None`` if it is missing or expired."""
    if document is None or not is_live(document):
        return None
    version = Version(document.get(VERSION) or "")
    return Entry(key, read_value(document), version, document.get(EXPIRES))


async def read_entry(
    collection: Collection, key: str, session: AsyncClientSession | None = None
) -> Entry | None:
    """Fetch one entry by key (expiry checked on the client, so no extra filter)."""
    return to_entry(key, await collection.find_one({"_id": key}, session=session))


async def write(
    collection: Collection,
    store: str,
    key: str,
    document: Document,
    if_version: Version | None,
    if_absent: bool,
    session: AsyncClientSession | None = None,
) -> None:
    """Write one entry: plain upsert, compare-and-set, or create-only.

    Compare-and-set replaces only a live document holding ``if_version``. Create-only
    replaces only an *expired* document and otherwise inserts, so a live document makes
    the insert fail with a duplicate key (reported as ``AlreadyExistsError``) while an
    expired one the TTL monitor has not removed yet does not block it.

    Raises:
        ConflictError: ``if_version`` did not match a live document.
        pymongo.errors.DuplicateKeyError: ``if_absent`` and the key holds a live entry.
    """
    if if_version is not None:
        query = {"_id": key, VERSION: if_version, **live_filter(utcnow())}
        result = await collection.replace_one(query, document, session=session)
        if result.matched_count == 0:
            raise ConflictError("version mismatch", backend=store, operation="save", key=key)
    elif if_absent:
        query = {"_id": key, **expired_filter(utcnow())}
        await collection.replace_one(query, document, upsert=True, session=session)
    else:
        try:
            await collection.replace_one({"_id": key}, document, upsert=True, session=session)
        except DuplicateKeyError:
            if session is not None:
                raise
            # Two upserts of a new key raced and the other inserted first (servers before
            # 4.2 do not retry this themselves); now the document exists and this matches.
            await collection.replace_one({"_id": key}, document, upsert=True)


async def remove(
    collection: Collection,
    store: str,
    key: str,
    if_version: Version | None,
    session: AsyncClientSession | None = None,
) -> bool:
    """Delete one live entry; return whether there was one.

    An expired document is left to the TTL monitor: it is invisible to every read and
    does not block create-only writes.

    Raises:
        ConflictError: ``if_version`` did not match a live document.
    """
    query: Document = {"_id": key, **live_filter(utcnow())}
    if if_version is not None:
        query[VERSION] = if_version
    result = await collection.delete_one(query, session=session)
    if if_version is not None and result.deleted_count == 0:
        raise ConflictError("version mismatch", backend=store, operation="delete", key=key)
    return result.deleted_count > 0
