"""Settings of the ``mongodb`` backend and their translation into PyMongo client options."""

from __future__ import annotations

from typing import Any, Literal
from urllib.parse import unquote

from pydantic import ConfigDict, Field, SecretStr, field_validator, model_validator

from polystore.spi import BackendSettings, redact_url, userinfo_problem
from polystore_mongodb.uri import uri_problem

__all__ = ["DEFAULT_DATABASE", "DEFAULT_URL", "MongoSettings", "database_from_url"]

DEFAULT_URL = "mongodb://127.0.0.1:27017/"
DEFAULT_DATABASE = "polystore"
_SCHEMES = ("mongodb://", "mongodb+srv://")
_BAD_DATABASE_CHARS = frozenset('/\\. "$\x00')
_MAX_DATABASE_BYTES = 63


def database_from_url(url: str) -> str | None:
    """The database named in the path of a MongoDB URI, or ``None``.

    Works for several hosts (``mongodb://h1,h2/app``) and ``mongodb+srv://`` without any
    DNS lookup.
    """
    _, _, rest = url.partition("://")
    hosts_and_path = rest.partition("?")[0].rpartition("@")[2]
    name = unquote(hosts_and_path.partition("/")[2])
    return name or None


def check_database_name(name: str) -> str:
    """Check a MongoDB database name (1-63 bytes, none of ``/\\. "$`` or NUL).

    Raises:
        ValueError: The name is not acceptable.
    """
    if not name or len(name.encode("utf-8")) > _MAX_DATABASE_BYTES:
        raise ValueError(f"database name must be 1-{_MAX_DATABASE_BYTES} bytes")
    if any(c in _BAD_DATABASE_CHARS for c in name):
        raise ValueError(f'database name {name!r} must not contain any of / \\ . space " $ NUL')
    return name


class MongoSettings(BackendSettings):
    """Options of the ``mongodb`` backend.

    Options set here win over the same options in the URL (for example ``w``).

    Attributes:
        url: ``mongodb://`` (standalone or replica set seed list) or ``mongodb+srv://`` URI.
        database: Database holding the namespaces; defaults to the URI's path, else
            ``"polystore"``.
        collection_prefix: Prepended to the namespace to name its collection.
        w: Write concern: ``"majority"`` (the default) or a number of nodes (>= 1).
        journal: Wait for the journal before acknowledging (``j``).
        read_concern: Read concern level, or ``None`` for the server's default.
        read_preference: Which members of a replica set serve reads
            (``"secondaryPreferred"``: secondaries, possibly stale), or ``None`` for the
            URL's ``readPreference`` (default ``primary``). Transactions always read on
            the primary.
        timeout: Seconds any one call may take, server selection included
            (PyMongo's ``timeoutMS``); ``None`` waits without limit.
        server_selection_timeout: Seconds to wait for a suitable server; defaults to
            ``timeout``.
        connect_timeout: Seconds to open one connection.
        max_pool_size: Connections per server.
        min_pool_size: Connections kept open per server.
        retry_writes: Let PyMongo retry a write once after a network error (safe: the
            server deduplicates it).
        retry_reads: Let PyMongo retry a read once after a network error.
        tls: Use TLS; ``None`` takes it from the URI (``mongodb+srv://`` implies TLS).
        tls_ca_file: CA bundle for verifying the server.
        tls_certificate_key_file: Client certificate and key (PEM).
        tls_certificate_key_file_password: Password of the client key.
        tls_allow_invalid_certificates: Disable certificate verification (never in
            production).
        tls_allow_invalid_hostnames: Disable hostname verification.
        app_name: Shown in the server's logs and ``currentOp``.
        keys_per_query: Keys per ``$in`` query, ``$in`` delete or ``bulk_write`` of a
            batch call; larger batches are split into several calls.
        max_value_bytes: Largest encoded value accepted.
        retry: Retry policy of idempotent reads.
        coalesce: Send concurrent single-key calls as batches (one ``$in`` read, one
            unordered ``bulk_write`` of plain saves); on by default.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)

    plugin: Literal["mongodb"] = "mongodb"
    url: SecretStr = Field(default=SecretStr(DEFAULT_URL))
    database: str | None = None
    collection_prefix: str = Field(default="polystore.", max_length=64)
    w: Literal["majority"] | int = Field(default="majority")
    journal: bool = True
    read_concern: Literal["local", "available", "majority", "linearizable"] | None = None
    read_preference: (
        Literal["primary", "primaryPreferred", "secondary", "secondaryPreferred", "nearest"] | None
    ) = None
    timeout: float | None = Field(default=10.0, gt=0, le=3600)
    server_selection_timeout: float | None = Field(default=None, gt=0, le=3600)
    connect_timeout: float = Field(default=10.0, gt=0, le=3600)
    max_pool_size: int = Field(default=100, ge=1)
    min_pool_size: int = Field(default=0, ge=0)
    retry_writes: bool = True
    retry_reads: bool = True
    tls: bool | None = None
    tls_ca_file: str | None = None
    tls_certificate_key_file: str | None = None
    tls_certificate_key_file_password: SecretStr | None = None
    tls_allow_invalid_certificates: bool = False
    tls_allow_invalid_hostnames: bool = False
    app_name: str = "polystore"
    keys_per_query: int = Field(default=1000, ge=1, le=10_000)
    coalesce: bool = True

    @field_validator("url")
    @classmethod
    def _check_url(cls, url: SecretStr) -> SecretStr:
        text = url.get_secret_value()
        if not text.startswith(_SCHEMES):
            raise ValueError(
                f"url must start with mongodb:// or mongodb+srv://, got {redact_url(text)!r}"
            )
        problem = userinfo_problem(text)
        if problem is not None:
            raise ValueError(f"{problem}; got {redact_url(text)!r}")
        problem = uri_problem(text)
        if problem is not None:
            raise ValueError(f"url {redact_url(text)!r} is not a valid MongoDB URI: {problem}")
        return url

    @field_validator("database")
    @classmethod
    def _check_database(cls, name: str | None) -> str | None:
        return None if name is None else check_database_name(name)

    @field_validator("collection_prefix")
    @classmethod
    def _check_prefix(cls, prefix: str) -> str:
        if "$" in prefix or "\x00" in prefix or prefix.startswith("system."):
            raise ValueError("collection_prefix must not contain '$' or NUL or start 'system.'")
        return prefix

    @field_validator("w")
    @classmethod
    def _check_w(cls, w: str | int) -> str | int:
        if isinstance(w, int) and (isinstance(w, bool) or w < 1):
            raise ValueError(
                "w must be 'majority' or a number of nodes >= 1 (w=0 is not "
                "supported: unacknowledged writes cannot report conflicts)"
            )
        return w

    @model_validator(mode="after")
    def _check_pool(self) -> MongoSettings:
        if self.min_pool_size > self.max_pool_size:
            raise ValueError("min_pool_size must not exceed max_pool_size")
        return self

    @property
    def redacted_url(self) -> str:
        """The URL with its password and secret parameters replaced by ``***``."""
        return redact_url(self.url.get_secret_value())

    def resolved_database(self) -> str:
        """The database to use: ``database``, else the URI's path, else ``"polystore"``.

        Raises:
            ValueError: The URI names a database that is not acceptable.
        """
        if self.database is not None:
            return self.database
        named = database_from_url(self.url.get_secret_value())
        return check_database_name(named) if named else DEFAULT_DATABASE

    def client_options(self) -> dict[str, Any]:
        """Keyword arguments for :class:`pymongo.AsyncMongoClient` (besides the URL)."""
        timeout_ms = None if self.timeout is None else int(self.timeout * 1000)
        selection = self.server_selection_timeout or self.timeout or 30.0
        options: dict[str, Any] = {
            "appname": self.app_name,
            "connectTimeoutMS": int(self.connect_timeout * 1000),
            "serverSelectionTimeoutMS": int(selection * 1000),
            "maxPoolSize": self.max_pool_size,
            "minPoolSize": self.min_pool_size,
            "retryWrites": self.retry_writes,
            "retryReads": self.retry_reads,
        }
        if timeout_ms is not None:
            options["timeoutMS"] = timeout_ms
        if self.tls is not None:
            options["tls"] = self.tls
        if self.tls_allow_invalid_certificates:
            options["tlsAllowInvalidCertificates"] = True
        if self.tls_allow_invalid_hostnames:
            options["tlsAllowInvalidHostnames"] = True
        if self.tls_ca_file is not None:
            options["tlsCAFile"] = self.tls_ca_file
        if self.tls_certificate_key_file is not None:
            options["tlsCertificateKeyFile"] = self.tls_certificate_key_file
        if self.tls_certificate_key_file_password is not None:
            options["tlsCertificateKeyFilePassword"] = (
                self.tls_certificate_key_file_password.get_secret_value()
            )
        return options
