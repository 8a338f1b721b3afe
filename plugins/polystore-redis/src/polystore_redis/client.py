"""Building the redis-py client from :class:`~polystore_redis.settings.RedisSettings`."""

from __future__ import annotations

from typing import Any, TypeAlias, cast
from urllib.parse import urlsplit

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel
from redis.backoff import NoBackoff

from polystore import ConfigurationError
from polystore.spi import redact_text, url_secrets
from polystore_redis.acknowledged import AcknowledgedClient
from polystore_redis.cluster import WaitingRedisCluster
from polystore_redis.packing import connection_class
from polystore_redis.pool import WaitingConnectionPool
from polystore_redis.settings import RedisSettings
from polystore_redis.url import sentinel_target

__all__ = ["RedisClient", "build_client", "build_replica_clients", "is_cluster_client"]

RedisClient: TypeAlias = "Redis | RedisCluster"
"""A single-server or cluster client of redis-py's asyncio API."""


def _no_driver_retries() -> Retry:
    # polystore retries idempotent reads itself; redis-py must never resend a write
    # whose reply was lost, so its own retries are off.
    return Retry(NoBackoff(), 0)


def _tls_options(settings: RedisSettings) -> dict[str, Any]:
    if not settings.uses_tls:
        return {}
    tls = settings.tls
    options: dict[str, Any] = {
        "ssl_cert_reqs": "required" if tls.verify else "none",
        "ssl_check_hostname": tls.verify and tls.check_hostname,
    }
    if tls.ca_file is not None:
        options["ssl_ca_certs"] = tls.ca_file
    if tls.cert_file is not None:
        options["ssl_certfile"] = tls.cert_file
    if tls.key_file is not None:
        options["ssl_keyfile"] = tls.key_file
    if tls.key_password is not None:
        if settings.is_cluster:
            raise ConfigurationError("tls.key_password is not supported with Redis Cluster")
        options["ssl_password"] = tls.key_password.get_secret_value()
    return options


def _options(settings: RedisSettings) -> dict[str, Any]:
    return {
        "socket_timeout": settings.timeout,
        "socket_connect_timeout": settings.connect_timeout or settings.timeout,
        "retry": _no_driver_retries(),
        **_tls_options(settings),
    }


def build_client(settings: RedisSettings) -> RedisClient:
    """Create the client the settings describe (no I/O: redis-py connects lazily).

    Single servers get a pool of ``pool_size`` connections whose callers wait at most
    ``timeout`` for a free one, packing commands with hiredis when it is installed; a
    cluster client keeps ``pool_size`` connections per node and runs at most
    ``pool_size`` calls at once, the others waiting at most ``timeout`` for their turn.

    Raises:
        ConfigurationError: The URL or an option is rejected by redis-py.
    """
    options = _options(settings)
    url = settings.driver_url()
    if settings.is_sentinel:
        return _acknowledged(_sentinel_client(settings, options), settings)
    try:
        if settings.is_cluster:
            return WaitingRedisCluster.from_url(
                url, max_connections=settings.pool_size, wait_timeout=settings.timeout, **options
            )
        fast = connection_class(settings.scheme)
        if fast is not None and "encoding" not in urlsplit(url).query:
            options["connection_class"] = fast
        pool = WaitingConnectionPool.from_url(
            url, max_connections=settings.pool_size, wait_timeout=settings.timeout, **options
        )
    except (ValueError, TypeError) as exc:
        # Not chained: the driver's exception may quote the URL it was given.
        raise ConfigurationError(
            f"redis url {settings.redacted_url()} is not usable: "
            f"{redact_text(str(exc), url_secrets(settings.url.get_secret_value()))}"
        ) from None
    return _acknowledged(Redis.from_pool(pool), settings)


def _acknowledged(client: Redis, settings: RedisSettings) -> RedisClient:
    if not settings.wait_replicas:
        return client
    # It answers every call the stores make of a Redis client.
    acknowledged = AcknowledgedClient(client, settings.wait_replicas, settings.timeout / 2, "redis")
    return cast("RedisClient", acknowledged)


def build_replica_clients(settings: RedisSettings) -> list[Redis]:
    """Clients of the replicas reads go to (``read_from = "replica"``), none otherwise:
    one per ``replica_urls`` entry, or one that Sentinel points at its replicas in turn.

    Raises:
        ConfigurationError: A replica URL or an option is rejected by redis-py.
    """
    if settings.read_from != "replica":
        return []
    if settings.is_sentinel:
        return [_sentinel_client(settings, _options(settings), replica=True)]
    clients: list[Redis] = []
    for url in settings.replica_urls:
        one = settings.model_copy(
            update={"url": url, "replica_urls": (), "read_from": "primary", "wait_replicas": 0}
        )
        clients.append(cast("Redis", build_client(one)))
    return clients


def _sentinel_client(
    settings: RedisSettings, options: dict[str, Any], *, replica: bool = False
) -> Redis:
    """A client of the primary that Sentinel names; it asks the Sentinels again whenever
    a connection to the primary fails, so it follows a failover without a restart. With
    ``replica``, a client of the replicas Sentinel lists, in turn."""
    target = sentinel_target(settings.url.get_secret_value())
    if isinstance(target, str):  # checked by the settings already
        raise ConfigurationError(f"redis url {settings.redacted_url()} is not usable: {target}")
    timeouts = {
        "socket_timeout": options["socket_timeout"],
        "socket_connect_timeout": options["socket_connect_timeout"],
    }
    # redis-py leaves Sentinel.__init__ unannotated.
    sentinel = Sentinel(  # type: ignore[no-untyped-call]
        list(target.sentinels), sentinel_kwargs=timeouts, **options
    )
    connect = sentinel.slave_for if replica else sentinel.master_for
    client: Redis = connect(
        target.service,
        redis_class=Redis,
        db=target.db,
        username=target.username,
        password=target.password,
        max_connections=settings.pool_size,
    )
    return client


def is_cluster_client(client: object) -> bool:
    """Whether ``client`` is a redis-py asyncio cluster client."""
    return isinstance(client, RedisCluster)
