"""The ``mongodb`` backend: one PyMongo async client, one database, a collection per namespace."""

from __future__ import annotations

import logging
from datetime import timezone
from typing import Any

from bson.codec_options import CodecOptions
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import ConfigurationError as PyMongoConfigurationError
from pymongo.read_concern import ReadConcern
from pymongo.read_preferences import ReadPreference
from pymongo.write_concern import WriteConcern

from polystore import ConfigurationError, StoreUnavailableError
from polystore.spi import BaseBackend, Capabilities, DataStore, RetryPolicy
from polystore_mongodb.errors import MongoErrors
from polystore_mongodb.settings import MongoSettings
from polystore_mongodb.store import MongoDBStore
from polystore_mongodb.uri import scrub_uri_message

__all__ = ["ALWAYS", "MAX_CAPABILITIES", "Document", "MongoBackend"]

Document = dict[str, Any]

logger = logging.getLogger("polystore.mongodb")

ALWAYS = (
    Capabilities.TTL
    | Capabilities.CAS
    | Capabilities.SCAN
    | Capabilities.QUERY
    | Capabilities.SHARED
)
"""What every MongoDB server gives: a TTL index, conditional writes, ranges, queries."""

MAX_CAPABILITIES = ALWAYS | Capabilities.DURABLE | Capabilities.TRANSACTIONS
"""The most a ``mongodb`` backend declares (a replica set with ``w="majority"``)."""

CODEC_OPTIONS: CodecOptions[Document] = CodecOptions(
    document_class=dict, tz_aware=True, tzinfo=timezone.utc
)
"""Documents as dicts, datetimes aware in UTC."""

_MAX_NAMESPACE_BYTES = 255  # "<database>.<collection>"
_TRANSACTIONS_MIN_WIRE = {"replica_set": 7, "sharded": 8}  # MongoDB 4.0 / 4.2


READ_PREFERENCES: dict[str, Any] = {
    "primary": ReadPreference.PRIMARY,
    "primaryPreferred": ReadPreference.PRIMARY_PREFERRED,
    "secondary": ReadPreference.SECONDARY,
    "secondaryPreferred": ReadPreference.SECONDARY_PREFERRED,
    "nearest": ReadPreference.NEAREST,
}
"""The ``read_preference`` setting's values; unset keeps the URL's ``readPreference``."""


def _durable(settings: MongoSettings) -> bool:
    return settings.w == "majority" and settings.journal


def transactions_supported(hello: Document) -> bool:
    """Whether a ``hello`` reply comes from a deployment with multi-document transactions.

    Replica-set members (``setName``) from wire version 7 and ``mongos`` (``msg:
    "isdbgrid"``) from wire version 8 support them; a standalone server does not.
    """
    wire = int(hello.get("maxWireVersion") or 0)
    if hello.get("logicalSessionTimeoutMinutes") is None:
        return False
    if hello.get("setName"):
        return wire >= _TRANSACTIONS_MIN_WIRE["replica_set"]
    if hello.get("msg") == "isdbgrid":
        return wire >= _TRANSACTIONS_MIN_WIRE["sharded"]
    return False


class MongoBackend(BaseBackend):
    """A MongoDB database reached through :class:`pymongo.AsyncMongoClient`.

    Capabilities are detected in :meth:`open` from the server's ``hello`` reply:
    ``TRANSACTIONS`` only on a replica set or sharded cluster, ``DURABLE`` only with
    ``w="majority"`` and ``journal=True`` (the defaults).

    Args:
        settings: Backend options; the defaults connect to ``mongodb://127.0.0.1:27017/``.
        name: Instance name, used in store names and messages.
        client: An existing client to use instead of creating one. It is used as is
            (the write concern, read concern and codec options of ``settings`` are
            applied to the database handle) and is never closed by the backend.

    Raises:
        ConfigurationError: ``client`` is not a :class:`pymongo.AsyncMongoClient`.
    """

    def __init__(
        self,
        settings: MongoSettings | None = None,
        *,
        name: str = "mongodb",
        client: AsyncMongoClient[Any] | None = None,
    ) -> None:
        self.settings = settings if settings is not None else MongoSettings()
        self.timeout = self.settings.timeout
        super().__init__(name, self._base_capabilities())
        if client is not None and not isinstance(client, AsyncMongoClient):
            raise ConfigurationError(
                f"client must be a pymongo.AsyncMongoClient, not {type(client).__name__}",
                backend=name,
            )
        self.retry: RetryPolicy = self.settings.retry.policy()
        self._client: AsyncMongoClient[Document] | None = client
        self._owns_client = client is None
        try:
            self.database_name = self._database_name()
        except ValueError as exc:
            raise ConfigurationError(str(exc), backend=name) from None
        self._database: AsyncDatabase[Document] | None = None
        self.hello: Document = {}
        self.server_version = ""

    def __repr__(self) -> str:
        return (
            f"<MongoBackend {self.name!r} url={self.settings.redacted_url!r} "
            f"database={self.database_name!r}>"
        )

    def _base_capabilities(self) -> Capabilities:
        return ALWAYS | Capabilities.DURABLE if _durable(self.settings) else ALWAYS

    def _database_name(self) -> str:
        if self.settings.database is None and self._client is not None:
            try:
                return str(self._client.get_default_database().name)
            except PyMongoConfigurationError:  # the client's URI names no database
                pass
        return self.settings.resolved_database()

    @property
    def owns_client(self) -> bool:
        """Whether the backend created (and so closes) its client."""
        return self._owns_client

    # -- lifecycle ----------------------------------------------------------------------

    async def _open(self) -> None:
        created = self._client is None
        logger.debug(
            "backend %s: connecting to %s (database %s)",
            self.name,
            self.settings.redacted_url if created else "a client passed in",
            self.database_name,
        )
        client = self._client
        if client is None:
            client = self._client = self._new_client()
        try:
            with MongoErrors(self.name, "open"):
                self.hello = await client.admin.command("hello")
                build = await client.admin.command("buildInfo")
        except BaseException:
            if created:  # a later open() starts afresh with a new client
                self._client = None
                await client.close()
            raise
        self.server_version = str(build.get("version", ""))
        self._database = client.get_database(
            self.database_name,
            codec_options=CODEC_OPTIONS,
            write_concern=self.write_concern(),
            read_concern=ReadConcern(self.settings.read_concern),
            read_preference=READ_PREFERENCES.get(self.settings.read_preference or ""),
        )
        detected = self._base_capabilities()
        if transactions_supported(self.hello):
            detected |= Capabilities.TRANSACTIONS
        self._capabilities = detected
        for store in self._stores.values():
            store.capabilities = detected
        logger.debug(
            "backend %s: mongodb %s, capabilities %s",
            self.name,
            self.server_version,
            ",".join(detected.names()),
        )

    def _new_client(self) -> AsyncMongoClient[Document]:
        """The client the settings describe (PyMongo connects in the background).

        Raises:
            ConfigurationError: PyMongo refuses the URI or an option.
        """
        try:
            with MongoErrors(self.name, "open"):
                return AsyncMongoClient(
                    self.settings.url.get_secret_value(),
                    document_class=dict,
                    **self.settings.client_options(),
                )
        except (ValueError, TypeError) as exc:
            # Not chained: PyMongo's message may quote a URI option, secrets included.
            raise ConfigurationError(
                f"PyMongo refuses the settings (url {self.settings.redacted_url!r}): "
                f"{scrub_uri_message(str(exc), self.settings.url.get_secret_value())}",
                backend=self.name,
                operation="open",
            ) from None

    async def _close(self) -> None:
        self._database = None
        if self._owns_client and self._client is not None:
            client, self._client = self._client, None
            await client.close()

    def write_concern(self) -> WriteConcern:
        """The write concern of every write (``w`` and ``j`` from the settings)."""
        return WriteConcern(w=self.settings.w, j=self.settings.journal)

    @property
    def client(self) -> AsyncMongoClient[Document]:
        """The client (after :meth:`open`).

        Raises:
            StoreUnavailableError: The backend is not open, or closed.
        """
        if self._client is None or self._database is None:
            raise StoreUnavailableError("backend is not open", backend=self.name)
        return self._client

    async def database(self) -> AsyncDatabase[Document]:
        """The database handle (opens the backend if needed).

        Raises:
            StoreUnavailableError: The backend is closed or the server cannot be reached.
        """
        if self._database is None:
            await self.open()
            if self._database is None:
                raise StoreUnavailableError("backend is closed", backend=self.name)
        return self._database

    @property
    def is_open(self) -> bool:
        """Whether :meth:`open` has completed and :meth:`aclose` has not been called."""
        return self._database is not None

    def collection_name(self, namespace: str) -> str:
        """The collection holding ``namespace``: the settings' prefix plus the namespace.

        Raises:
            ConfigurationError: ``"<database>.<collection>"`` exceeds 255 bytes.
        """
        name = self.settings.collection_prefix + namespace
        if len(f"{self.database_name}.{name}".encode()) > _MAX_NAMESPACE_BYTES:
            raise ConfigurationError(
                f"collection name {name!r} is too long for database {self.database_name!r}",
                backend=self.name,
            )
        return name

    def _make_store(self, namespace: str) -> DataStore:
        return MongoDBStore(self, namespace, self._capabilities)

    async def _ping(self) -> str:
        database = await self.database()
        with MongoErrors(self.name, "health"):
            await database.command("ping")
        topology = "replica set" if self.hello.get("setName") else "standalone"
        if self.hello.get("msg") == "isdbgrid":
            topology = "sharded"
        return f"mongodb {self.server_version} ({topology}), database {self.database_name}"
