"""The plugin module named by the ``polystore`` entry point: registers the ``redis`` backend."""

from __future__ import annotations

from polystore import BackendRegistry, BackendSpec, hookimpl
from polystore_redis.backend import MAX_CAPABILITIES, RedisBackend
from polystore_redis.settings import RedisSettings

__all__ = ["polystore_register_backends"]


@hookimpl
def polystore_register_backends(registry: BackendRegistry) -> None:
    """Register the ``redis`` backend."""
    registry.register(
        BackendSpec(
            name="redis",
            factory=RedisBackend,
            settings_model=RedisSettings,
            capabilities=MAX_CAPABILITIES,
            description="Redis or Redis Cluster (redis-py asyncio); ttl, cas, transactions, scan",
        )
    )
