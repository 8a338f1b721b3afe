"""The ``redis`` backend: owns the redis-py client and hands out namespaces."""

from __future__ import annotations

from typing import Any, NoReturn

from redis import exceptions as rx

from polystore import (
    BaseBackend,
    Capabilities,
    DataStore,
    RetryPolicy,
    StoreUnavailableError,
)
from polystore_redis.client import (
    RedisClient,
    build_client,
    build_replica_clients,
    is_cluster_client,
)
from polystore_redis.errors import RedisErrors
from polystore_redis.replicas import ReplicaReads
from polystore_redis.scripts import Scripts
from polystore_redis.settings import RedisSettings
from polystore_redis.store import RedisStore

__all__ = ["BASE_CAPABILITIES", "MAX_CAPABILITIES", "RedisBackend"]

BASE_CAPABILITIES = (
    Capabilities.TTL
    | Capabilities.CAS
    | Capabilities.TRANSACTIONS
    | Capabilities.SCAN
    | Capabilities.SHARED
)
"""What every Redis store declares (TRANSACTIONS needs one slot on a cluster)."""

MAX_CAPABILITIES = BASE_CAPABILITIES | Capabilities.DURABLE
"""DURABLE is added when every primary runs ``appendonly yes`` with ``appendfsync always``."""


class _Closed:
    """Stands in for the client after :meth:`RedisBackend.aclose`: every use fails."""

    def __init__(self, backend: str) -> None:
        self._backend = backend

    def __getattr__(self, name: str) -> NoReturn:
        raise StoreUnavailableError("backend is closed", backend=self._backend, operation=name)


def _config_value(reply: Any, name: str) -> str:
    """One value of a ``CONFIG GET`` reply (a dict, or a flat list from a raw call)."""
    if isinstance(reply, list):
        reply = dict(zip(reply[::2], reply[1::2], strict=True))
    value = reply.get(name, reply.get(name.encode(), b""))
    return value.decode() if isinstance(value, bytes) else str(value)


class RedisBackend(BaseBackend):
    """A Redis server or Redis Cluster holding any number of namespaces.

    Args:
        settings: Connection and layout options; defaults to ``redis://127.0.0.1:6379/0``.
        name: The backend's instance name (used in store names and errors).
        client: A ``redis.asyncio.Redis`` or ``RedisCluster`` to use instead of building
            one from ``settings.url``. It is never closed by the backend. It should be
            created with ``decode_responses=False``, and preferably without driver-level
            retries, which could resend a write whose reply was lost.

    Example::

        async with RedisBackend(RedisSettings(url="redis://localhost:6379/0")) as backend:
            sessions = backend.namespace("sessions")
            await sessions.save("s1", {"user": "u1"}, ttl=900)
    """

    def __init__(
        self,
        settings: RedisSettings | None = None,
        *,
        name: str = "redis",
        client: RedisClient | None = None,
    ) -> None:
        super().__init__(name, BASE_CAPABILITIES)
        self.settings = settings if settings is not None else RedisSettings()
        self.timeout = self.settings.timeout
        self.retry: RetryPolicy = self.settings.retry.policy()
        self._owns_client = client is None
        self.client: Any = client if client is not None else build_client(self.settings)
        self.is_cluster = is_cluster_client(self.client)
        tags = self.settings.hash_tag_namespaces
        self.hash_tag_namespaces = self.is_cluster if tags is None else tags
        self.scripts = Scripts(self.client)
        replicas = build_replica_clients(self.settings)
        # Where stores send reads: the primary's client, or replicas falling back to it.
        self.reads: Any = (
            ReplicaReads(replicas, self.client, self.timeout) if replicas else self.client
        )
        self.server_version = ""

    def __repr__(self) -> str:
        kind = "cluster" if self.is_cluster else "server"
        return (
            f"<RedisBackend {self.name!r} {kind} url={self.settings.redacted_url()!r} "
            f"prefix={self.settings.prefix!r}>"
        )

    def _store_capabilities(self, store: RedisStore) -> Capabilities:
        capabilities = self._capabilities
        if (self.is_cluster and not store.layout.single_slot) or self.settings.wait_replicas:
            # WAIT inside MULTI does not wait: no transaction could honour wait_replicas.
            capabilities &= ~Capabilities.TRANSACTIONS
        if self.settings.read_from == "replica":
            # A version read on a replica may be old: no compare-and-set on stale versions.
            capabilities &= ~Capabilities.CAS
        return capabilities

    async def _open(self) -> None:
        client = self.client
        with RedisErrors(self.name, "open"):
            if self.is_cluster:
                await client.initialize()
            info = await client.info("server")
        self.server_version = _server_version(info)
        if await self._durable():
            self._capabilities = BASE_CAPABILITIES | Capabilities.DURABLE
        for store in self._stores.values():
            if isinstance(store, RedisStore):
                store.capabilities = self._store_capabilities(store)

    async def _durable(self) -> bool:
        """Whether every primary fsyncs its append-only file on every write."""
        client = self.client
        with RedisErrors(self.name, "open"):
            try:
                if self.is_cluster:
                    replies = [
                        await client.execute_command("CONFIG", "GET", "append*", target_nodes=node)
                        for node in client.get_primaries()
                    ]
                else:
                    replies = [await client.config_get("append*")]
            except rx.ResponseError:
                return False  # CONFIG is disabled, renamed or not permitted: not durable
        return all(
            _config_value(reply, "appendonly") == "yes"
            and _config_value(reply, "appendfsync") == "always"
            for reply in replies
        )

    async def aclose(self) -> None:
        """Close the client (unless the user passed it in); later calls fail. Idempotent.

        Unlike the base class this also runs when :meth:`open` never ran, since stores
        connect lazily and may have used the client without it.
        """
        if self._closed:
            return
        self._closed = True
        await self._wait_for_open()
        await self._close()

    async def _close(self) -> None:
        closed = _Closed(self.name)
        for store in self._stores.values():
            if isinstance(store, RedisStore):
                store._detach(closed)
        owned = [self.client] if self._owns_client else []
        if isinstance(self.reads, ReplicaReads):
            owned.extend(self.reads.replicas)
        for client in owned:
            # A Sentinel-managed client: the Sentinels' own connections are closed too.
            pool = getattr(client, "connection_pool", None)
            manager = getattr(pool, "sentinel_manager", None)
            with RedisErrors(self.name, "close"):
                await client.aclose()
                for sentinel in getattr(manager, "sentinels", ()):
                    await sentinel.aclose()
        self.client = closed
        self.reads = closed
        self.scripts = closed  # type: ignore[assignment]

    def _make_store(self, namespace: str) -> DataStore:
        if self._closed:
            raise StoreUnavailableError("backend is closed", backend=self.name)
        store = RedisStore(self, namespace, BASE_CAPABILITIES)
        store.capabilities = self._store_capabilities(store)
        return store

    async def _ping(self) -> str:
        with RedisErrors(self.name, "health"):
            await self.client.ping()
        kind = "redis cluster" if self.is_cluster else "redis"
        version = f" {self.server_version}" if self.server_version else ""
        return f"{kind}{version}"


def _server_version(info: Any) -> str:
    """``redis_version`` from ``INFO server`` (a dict, or a dict per node on a cluster)."""
    if not isinstance(info, dict):
        return ""
    version = info.get("redis_version")
    if version is None:
        versions = {str(v.get("redis_version")) for v in info.values() if isinstance(v, dict)}
        return ",".join(sorted(versions))
    return str(version)
