"""Settings of the ``redis`` backend: a pydantic model validated before anything connects."""

from __future__ import annotations

from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from polystore.spi import BackendSettings, redact_url, userinfo_problem
from polystore_redis.url import url_problem

__all__ = [
    "CLUSTER_SCHEMES",
    "SENTINEL_SCHEMES",
    "URL_SCHEMES",
    "RedisSettings",
    "RedisTLSSettings",
]

URL_SCHEMES = frozenset({"redis", "rediss", "unix"})
"""Schemes of a single server (``unix`` is a Unix domain socket)."""

CLUSTER_SCHEMES = frozenset({"redis+cluster", "rediss+cluster"})
"""Schemes that select Redis Cluster, like ``cluster = true``; the URL names one seed node."""

SENTINEL_SCHEMES = frozenset({"redis+sentinel"})
"""Schemes that find the primary through Redis Sentinel:
``redis+sentinel://host:26379[,host2:26379]/service_name[/db]``."""

_MAX_PREFIX = 256


class RedisTLSSettings(BaseModel):
    """TLS options, used with ``rediss://`` URLs and passed through to redis-py.

    Attributes:
        ca_file: PEM file of the certificate authorities to trust (system store if unset).
        cert_file: Client certificate (PEM), for servers that require one.
        key_file: Private key of the client certificate (PEM).
        key_password: Password of an encrypted ``key_file``.
        verify: Verify the server's certificate. On by default; turn off only for tests.
        check_hostname: Check that the certificate names the host connected to.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)

    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    key_password: SecretStr | None = None
    verify: bool = True
    check_hostname: bool = True

    @property
    def customised(self) -> bool:
        """Whether any option differs from the defaults."""
        return self != RedisTLSSettings()


class RedisSettings(BackendSettings):
    """Options of the ``redis`` backend.

    Attributes:
        plugin: Always ``"redis"``.
        url: ``redis://[[user]:password@]host:port/db``, ``rediss://...`` (TLS),
            ``unix:///path/to/socket?db=0``, or ``redis+cluster://`` / ``rediss+cluster://``
            to name a seed node of a Redis Cluster, or
            ``redis+sentinel://[[user]:password@]host:26379[,host:port...]/service[/db]`` to
            find the primary named ``service`` through Redis Sentinel (and follow failovers).
        pool_size: Most connections kept open (per node for a cluster, where it also
            bounds the calls in flight over the whole cluster).
        timeout: Seconds allowed for each network step of a call (connect, send, reply)
            and for waiting on a free pooled connection.
        connect_timeout: Seconds allowed to connect; ``timeout`` when unset.
        retry: Retries of idempotent reads on :class:`~polystore.StoreUnavailableError`.
        prefix: First part of every key: ``{prefix}:{namespace}:{key}``.
        tls: TLS options (``rediss://`` only).
        cluster: Use Redis Cluster (``redis.asyncio.cluster.RedisCluster``).
        hash_tag_namespaces: Write the namespace as a hash tag (``{prefix}:{ns}:key``) so a
            namespace lives in one cluster slot: batches and transactions stay on one node.
            Defaults to true for a cluster, false otherwise.
        wait_replicas: Replicas that must confirm each write (``WAIT``) before it is
            acknowledged; fewer within half of ``timeout`` raise ``UnknownOutcomeError``. A
            backend with it offers no transactions. 0 (the default): no waiting.
        max_value_bytes: Largest encoded value accepted.
        coalesce: Send concurrent single-key calls as batches (one script for reads, one
            pipeline for writes); on by default, off on a cluster.
        replica_urls: ``redis://`` / ``rediss://`` / ``unix://`` URLs of replicas of the
            primary, for ``read_from = "replica"`` (a ``redis+sentinel://`` URL finds
            the replicas through the Sentinels instead).
        read_from: ``"primary"`` (the default) or ``"replica"``: get, get_entry, exists,
            get_many and scan go to a replica, in turn, and to the primary when none
            answers. Replicas lag: such reads may be stale, even of this process's own
            writes. Writes and transactions always use the primary, and the stores do not
            declare ``CAS``, so a route that requires it is refused at start.
    """

    # Validation errors would otherwise quote the raw input, password included.
    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    plugin: Literal["redis"] = "redis"
    url: SecretStr = Field(default=SecretStr("redis://127.0.0.1:6379/0"))
    pool_size: int = Field(default=50, ge=1, le=100_000)
    timeout: float = Field(default=5.0, gt=0, le=3600)
    connect_timeout: float | None = Field(default=None, gt=0, le=3600)
    prefix: str = "polystore"
    tls: RedisTLSSettings = Field(default_factory=RedisTLSSettings)
    cluster: bool = False
    hash_tag_namespaces: bool | None = None
    wait_replicas: int = Field(default=0, ge=0, le=100)
    coalesce: bool = True
    replica_urls: tuple[SecretStr, ...] = ()
    read_from: Literal["primary", "replica"] = "primary"

    @field_validator("url")
    @classmethod
    def _check_url(cls, url: SecretStr) -> SecretStr:
        text = url.get_secret_value()
        try:
            scheme = urlsplit(text).scheme.lower()
        except ValueError:
            raise ValueError(f"url does not parse: {redact_url(text)}") from None
        schemes = URL_SCHEMES | CLUSTER_SCHEMES | SENTINEL_SCHEMES
        if scheme not in schemes:
            known = ", ".join(f"{s}://" for s in sorted(schemes))
            raise ValueError(f"url must start with one of {known}; got {redact_url(text)}")
        problem = userinfo_problem(text) or url_problem(text)
        if problem is not None:
            raise ValueError(f"{problem}; got {redact_url(text)}")
        return url

    @field_validator("replica_urls")
    @classmethod
    def _check_replica_urls(cls, urls: tuple[SecretStr, ...]) -> tuple[SecretStr, ...]:
        for url in urls:
            text = url.get_secret_value()
            try:
                scheme = urlsplit(text).scheme.lower()
            except ValueError:
                raise ValueError(f"replica_urls: {redact_url(text)} does not parse") from None
            if scheme not in URL_SCHEMES:
                known = ", ".join(f"{s}://" for s in sorted(URL_SCHEMES))
                raise ValueError(f"replica_urls must start with {known}; got {redact_url(text)}")
            problem = userinfo_problem(text) or url_problem(text)
            if problem is not None:
                raise ValueError(f"replica_urls: {problem}; got {redact_url(text)}")
        return urls

    @field_validator("prefix")
    @classmethod
    def _check_prefix(cls, prefix: str) -> str:
        if not prefix:
            raise ValueError("prefix must not be empty")
        if "\x00" in prefix:
            raise ValueError("prefix must not contain NUL characters")
        try:
            size = len(prefix.encode("utf-8"))
        except UnicodeEncodeError:
            raise ValueError("prefix is not valid Unicode") from None
        if size > _MAX_PREFIX:
            raise ValueError(f"prefix is {size} UTF-8 bytes; the limit is {_MAX_PREFIX}")
        return prefix

    @model_validator(mode="after")
    def _check_combination(self) -> RedisSettings:
        scheme = self.scheme
        if self.wait_replicas and self.is_cluster:
            raise ValueError("wait_replicas is not supported with Redis Cluster")
        if self.is_sentinel and self.cluster:
            raise ValueError("cluster = true does not go with a redis+sentinel:// URL")
        if self.is_cluster and scheme == "unix":
            raise ValueError("Redis Cluster needs a redis:// or rediss:// seed URL, not unix://")
        if self.replica_urls and (self.is_cluster or self.is_sentinel):
            raise ValueError(
                "replica_urls go with a single-server url; a cluster or Sentinel knows its replicas"
            )
        if self.read_from == "replica" and self.is_cluster:
            raise ValueError('read_from = "replica" is not supported with Redis Cluster')
        if self.read_from == "replica" and not (self.replica_urls or self.is_sentinel):
            raise ValueError('read_from = "replica" needs replica_urls or a redis+sentinel:// url')
        if self.tls.customised and scheme not in ("rediss", "rediss+cluster"):
            raise ValueError("tls options need a rediss:// URL")
        return self

    @property
    def scheme(self) -> str:
        """The URL scheme, lower case."""
        return urlsplit(self.url.get_secret_value()).scheme.lower()

    @property
    def is_cluster(self) -> bool:
        """Whether Redis Cluster is used (``cluster = true`` or a ``+cluster`` URL)."""
        return self.cluster or self.scheme in CLUSTER_SCHEMES

    @property
    def is_sentinel(self) -> bool:
        """Whether the primary is found through Redis Sentinel (a ``+sentinel`` URL)."""
        return self.scheme in SENTINEL_SCHEMES

    @property
    def use_hash_tags(self) -> bool:
        """Whether the namespace is written as a hash tag."""
        if self.hash_tag_namespaces is None:
            return self.is_cluster
        return self.hash_tag_namespaces

    @property
    def uses_tls(self) -> bool:
        """Whether the connection is TLS (``rediss``)."""
        return self.scheme in ("rediss", "rediss+cluster")

    def driver_url(self) -> str:
        """The URL for redis-py (``+cluster`` removed). Holds the password: never log it."""
        text = self.url.get_secret_value()
        scheme, sep, rest = text.partition("://")
        return f"{scheme.lower().removesuffix('+cluster')}{sep}{rest}"

    def redacted_url(self) -> str:
        """The URL with its password replaced by ``***``."""
        return redact_url(self.url.get_secret_value())
