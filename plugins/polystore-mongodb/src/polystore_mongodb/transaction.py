"""Multi-document transactions of the ``mongodb`` backend, on client sessions."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.errors import PyMongoError
from pymongo.read_concern import ReadConcern
from pymongo.read_preferences import ReadPreference

from polystore.spi import (
    BaseTransaction,
    DataStoreTransaction,
    Entry,
    JSONValue,
    Version,
    new_version,
)
from polystore_mongodb.documents import make_document
from polystore_mongodb.errors import MongoErrors
from polystore_mongodb.operations import Collection, read_entry, remove, write

if TYPE_CHECKING:
    from polystore_mongodb.backend import MongoBackend
    from polystore_mongodb.store import MongoDBStore

__all__ = ["MongoTransaction", "run_transaction"]


class MongoTransaction(BaseTransaction):
    """Reads and writes inside one MongoDB transaction (snapshot reads).

    Conditions (``if_version``, ``if_absent``) are checked by the server at the call;
    a failed one raises at once, and leaving the ``async with`` block with it aborts
    the whole transaction. Use one transaction from one task at a time.
    """

    store: MongoDBStore

    def __init__(
        self, store: MongoDBStore, collection: Collection, session: AsyncClientSession
    ) -> None:
        super().__init__(store)
        self._collection = collection
        self._session = session

    async def _get_entry(self, key: str) -> Entry | None:
        with MongoErrors(self.store.name, "get", key):
            return await read_entry(self._collection, key, self._session)

    async def _save(
        self,
        key: str,
        value: JSONValue,
        data: bytes,
        ttl: float | None,
        if_version: Version | None,
        if_absent: bool,
    ) -> Version:
        version = new_version()
        document = make_document(value, data, version, ttl)
        # Not ``write=True``: a write lost inside a transaction is never committed.
        with MongoErrors(self.store.name, "save", key):
            await write(
                self._collection, self.store.name, key, document, if_version, if_absent,
                self._session,
            )  # fmt: skip
        return version

    async def _delete(self, key: str, if_version: Version | None) -> bool:
        with MongoErrors(self.store.name, "delete", key):
            return await remove(self._collection, self.store.name, key, if_version, self._session)


@asynccontextmanager
async def run_transaction(
    store: MongoDBStore, backend: MongoBackend
) -> AsyncIterator[DataStoreTransaction]:
    """Run a transaction on ``store``: commit on normal exit, abort on any exception.

    Raises:
        ConflictError: A concurrent write conflicted; nothing was applied, run it again.
        UnknownOutcomeError: The commit was sent but its result is unknown.
    """
    collection = await store.ensure_indexes()  # index builds cannot run inside it
    with MongoErrors(store.name, "transaction"):
        session = backend.client.start_session()
    try:
        with MongoErrors(store.name, "transaction"):
            await session.start_transaction(
                read_concern=ReadConcern("snapshot"),
                write_concern=backend.write_concern(),
                read_preference=ReadPreference.PRIMARY,  # whatever the store reads from
            )
        try:
            yield MongoTransaction(store, collection, session)
        except BaseException:
            if session.in_transaction:
                with contextlib.suppress(PyMongoError):
                    await session.abort_transaction()
            raise
        with MongoErrors(store.name, "commit", write=True):
            await session.commit_transaction()
    finally:
        with contextlib.suppress(PyMongoError):
            await session.end_session()
