"""Settings of the ``postgres`` backend and how they become asyncpg connection arguments."""

from __future__ import annotations

from typing import Any, Literal
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

from pydantic import ConfigDict, Field, SecretStr, field_validator, model_validator

from polystore.spi import (
    BackendSettings,
    redact_url,
    url_secrets,
    userinfo_problem,
)
from polystore_postgres.dsn import dsn_problem
from polystore_postgres.naming import check_identifier
from polystore_postgres.partitions import Partitioning

__all__ = ["Isolation", "PostgresSettings", "SslMode"]

Isolation = Literal["read_committed", "repeatable_read", "serializable"]
SslMode = Literal["disable", "allow", "prefer", "require", "verify-ca", "verify-full"]


class PostgresSettings(BackendSettings):
    """Options of the ``postgres`` backend.

    Give either ``url`` (a libpq-style DSN such as ``postgresql://app:pw@db:5432/app``) or
    the parts (``host``, ``port``, ``user``, ``password``, ``database``); parts that are
    set override the matching parts of the URL. Unset parts fall back to libpq's
    environment variables (``PGHOST``, ``PGPASSWORD``, ...), as asyncpg does.

    Attributes:
        url: DSN; may carry ``sslmode``/``sslrootcert`` query parameters.
        host: Server host name or address.
        port: Server port.
        user: Role to connect as.
        password: Password of the role.
        database: Database name.
        db_schema: Schema holding the tables (configuration key ``schema``).
        min_pool_size: Connections kept open.
        max_pool_size: Most connections open at once.
        connect_timeout: Seconds allowed to open one connection.
        timeout: Seconds allowed for one call (waiting for a connection, then the statement).
        statement_timeout: Server-side ``statement_timeout`` in seconds; ``None`` keeps the
            server's. A statement the server cancels is known not to have been applied.
        statement_cache_size: Prepared statements cached per connection (0 for PgBouncer
            in transaction mode).
        isolation: Isolation level of :meth:`~polystore.DataStore.transaction`.
        transaction_attempts: Tries of ``run_transaction`` on serialization failures.
        retry: Retry policy of idempotent reads.
        sslmode: libpq ``sslmode``; ``None`` takes it from the URL (default ``prefer``).
        sslrootcert: CA bundle that verifies the server certificate.
        sslcert: Client certificate file.
        sslkey: Client private key file.
        sslpassword: Password of the client key.
        application_name: ``application_name`` shown in ``pg_stat_activity``.
        reap_interval: Seconds between sweeps of expired rows; ``None`` disables the sweeper.
        reap_batch: Most rows one sweep removes from one table.
        batch_rows: Rows per statement in batch calls; larger batches are chunked.
        query_index: The GIN index that serves ``find``: ``"auto"`` builds it concurrently,
            in the background, on a namespace's first ``find``; ``"eager"`` creates it with
            the table; ``"off"`` never (``find`` then scans the table). The index costs
            write speed (every write re-indexes the document), so namespaces that are
            never queried do not pay for it under ``"auto"``.
        max_value_bytes: Largest encoded value accepted.
        replica_urls: DSNs of streaming standbys of the primary, for reads (see
            ``read_from``); ``host``/``port`` parts apply to the primary only, the other
            parts and the TLS options to every server.
        read_from: ``"primary"`` reads on the primary (standbys answer only while it
            cannot be reached); ``"replica"`` reads on the standbys whenever they are
            fresh enough, else on the primary.
        read_your_writes: A standby answers only once it has replayed this process's
            latest write (costs one short query per write); ``False`` accepts stale reads.
        max_replica_lag: Seconds a standby may be behind the primary and still answer;
            ``None`` for no bound beyond ``read_your_writes``.
        partitioning: How new namespace tables are partitioned (see
            :mod:`polystore_postgres.partitions`); ``None`` for plain tables.
        coalesce: Send concurrent single-key calls as batches (one ``= ANY`` read, one
            commit per batch of writes); on by default, not with standbys or month
            partitions.
    """

    # Validation errors would otherwise quote the raw input, password included.
    model_config = ConfigDict(
        extra="forbid", populate_by_name=True, frozen=True, hide_input_in_errors=True
    )

    plugin: Literal["postgres"] = "postgres"
    url: SecretStr | None = None
    host: str | None = None
    port: int | None = Field(default=None, ge=1, le=65535)
    user: str | None = None
    password: SecretStr | None = None
    database: str | None = None
    db_schema: str = Field(default="polystore", alias="schema")
    min_pool_size: int = Field(default=1, ge=0, le=1000)
    max_pool_size: int = Field(default=10, ge=1, le=1000)
    connect_timeout: float = Field(default=5.0, gt=0, le=600)
    timeout: float = Field(default=10.0, gt=0, le=3600)
    statement_timeout: float | None = Field(default=None, gt=0, le=86400)
    statement_cache_size: int = Field(default=1024, ge=0)
    isolation: Isolation = "serializable"
    transaction_attempts: int = Field(default=5, ge=1, le=100)
    sslmode: SslMode | None = None
    sslrootcert: str | None = None
    sslcert: str | None = None
    sslkey: str | None = None
    sslpassword: SecretStr | None = None
    application_name: str = "polystore"
    reap_interval: float | None = Field(default=60.0, gt=0)
    reap_batch: int = Field(default=1000, ge=1, le=1_000_000)
    batch_rows: int = Field(default=5000, ge=1, le=100_000)
    query_index: Literal["auto", "eager", "off"] = "auto"
    replica_urls: tuple[SecretStr, ...] = ()
    read_from: Literal["primary", "replica"] = "primary"
    read_your_writes: bool = True
    max_replica_lag: float | None = Field(default=None, gt=0, le=86400)
    partitioning: Partitioning | None = None
    coalesce: bool = True

    @field_validator("url")
    @classmethod
    def _url_is_unambiguous(cls, url: SecretStr | None) -> SecretStr | None:
        problem = None if url is None else userinfo_problem(url.get_secret_value())
        if url is not None and problem is not None:
            raise ValueError(f"{problem}; got {redact_url(url.get_secret_value())!r}")
        return url

    @field_validator("url")
    @classmethod
    def _url_is_usable(cls, url: SecretStr | None) -> SecretStr | None:
        problem = None if url is None else dsn_problem(url.get_secret_value())
        if url is not None and problem is not None:
            raise ValueError(f"{problem}; got {redact_url(url.get_secret_value())!r}")
        return url

    @field_validator("replica_urls")
    @classmethod
    def _replica_urls_are_usable(cls, urls: tuple[SecretStr, ...]) -> tuple[SecretStr, ...]:
        for url in urls:
            text = url.get_secret_value()
            problem = userinfo_problem(text) or dsn_problem(text)
            if problem is not None:
                raise ValueError(f"replica_urls: {problem}; got {redact_url(text)!r}")
        return urls

    @field_validator("db_schema")
    @classmethod
    def _schema_is_an_identifier(cls, value: str) -> str:
        return check_identifier(value, what="schema")

    @model_validator(mode="after")
    def _pool_bounds(self) -> PostgresSettings:
        if self.min_pool_size > self.max_pool_size:
            raise ValueError("min_pool_size must not exceed max_pool_size")
        if self.read_from == "replica" and not self.replica_urls:
            raise ValueError('read_from = "replica" needs replica_urls')
        return self

    def __repr_args__(self) -> Any:
        # The DSN is shown redacted; SecretStr already hides the password field.
        for name, value in super().__repr_args__():
            if name == "url" and value is not None:
                yield name, self.display_url
            elif name == "replica_urls":
                yield name, tuple(redact_url(url.get_secret_value()) for url in value)
            else:
                yield name, value

    @property
    def display_url(self) -> str:
        """Where the backend connects, with any password replaced by ``***``.

        Parts that are set override the URL's, as they do when connecting.
        """
        url = redact_url(self.url.get_secret_value()) if self.url is not None else ""
        if url and not self._has_parts():
            return url
        parts = urlsplit(url or "postgresql://")
        userinfo, _, hosts = parts.netloc.rpartition("@")
        url_user, has_password, _ = userinfo.partition(":")
        user = quote(self.user, safe="") if self.user is not None else url_user
        if self.password is not None or has_password:
            user += ":***"
        if self.host is not None or self.port is not None:
            host = self.host if self.host is not None else (parts.hostname or "")
            hosts = host + (f":{self.port}" if self.port is not None else "")
        path = f"/{quote(self.database, safe='')}" if self.database is not None else parts.path
        query = f"?{parts.query}" if parts.query else ""
        return f"postgresql://{user + '@' if user else ''}{hosts}{path}{query}"

    def _has_parts(self) -> bool:
        return any(
            v is not None for v in (self.host, self.port, self.user, self.password, self.database)
        )

    def secrets(self) -> tuple[str, ...]:
        """The secret strings these settings hold, for scrubbing from messages."""
        found: list[str] = []
        if self.password is not None and self.password.get_secret_value():
            found.append(self.password.get_secret_value())
        if self.sslpassword is not None and self.sslpassword.get_secret_value():
            found.append(self.sslpassword.get_secret_value())
        for url in (self.url, *self.replica_urls):
            if url is not None:
                found.extend(url_secrets(url.get_secret_value()))
        return tuple(found)

    def connect_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``asyncpg.connect`` / ``asyncpg.create_pool``.

        TLS options travel as DSN query parameters, so asyncpg applies libpq's exact
        rules (``verify-full`` checks the certificate chain and the host name).
        """
        kwargs: dict[str, Any] = {
            "dsn": self._dsn(),
            "timeout": self.connect_timeout,
            "statement_cache_size": self.statement_cache_size,
            "server_settings": self.server_settings(),
        }
        for name in ("host", "port", "user", "database"):
            value = getattr(self, name)
            if value is not None:
                kwargs[name] = value
        if self.password is not None:
            kwargs["password"] = self.password.get_secret_value()
        return kwargs

    def standby_connect_kwargs(self, url: SecretStr) -> dict[str, Any]:
        """Keyword arguments for connecting to the standby at ``url`` (one of
        ``replica_urls``): the primary's, with the standby's DSN and without the
        ``host``/``port`` parts."""
        kwargs = self.connect_kwargs()
        kwargs["dsn"] = self._with_tls(url.get_secret_value())
        kwargs.pop("host", None)
        kwargs.pop("port", None)
        return kwargs

    def server_settings(self) -> dict[str, str]:
        """Session settings sent at connection start-up."""
        settings = {"application_name": self.application_name}
        if self.statement_timeout is not None:
            settings["statement_timeout"] = str(max(1, round(self.statement_timeout * 1000)))
        return settings

    def _dsn(self) -> str:
        return self._with_tls(self.url.get_secret_value() if self.url is not None else None)

    def _with_tls(self, url: str | None) -> str:
        dsn = url if url is not None else "postgresql://"
        tls = {
            "sslmode": self.sslmode,
            "sslrootcert": self.sslrootcert,
            "sslcert": self.sslcert,
            "sslkey": self.sslkey,
            "sslpassword": self.sslpassword.get_secret_value() if self.sslpassword else None,
        }
        overrides = {name: value for name, value in tls.items() if value is not None}
        if not overrides:
            return dsn
        parts = urlsplit(dsn)
        query = [(n, v) for n, v in parse_qsl(parts.query, keep_blank_values=True)]
        query = [(n, v) for n, v in query if n not in overrides] + list(overrides.items())
        return urlunsplit(parts._replace(query=urlencode(query)))
