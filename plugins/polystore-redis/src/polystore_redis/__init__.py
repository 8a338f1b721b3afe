"""polystore-redis: the Redis and Redis Cluster backend of polystore.

Installed, it registers the ``redis`` plugin through the ``polystore`` entry point::

    [backends.cache]
    plugin = "redis"
    url = "redis://localhost:6379/0"

It can also be used directly::

    from polystore_redis import RedisBackend, RedisSettings

    async with RedisBackend(RedisSettings(url="redis://localhost:6379/0")) as backend:
        store = backend.namespace("sessions")
"""

from polystore_redis.backend import RedisBackend
from polystore_redis.errors import RedisErrors
from polystore_redis.settings import RedisSettings, RedisTLSSettings
from polystore_redis.store import RedisStore

__version__ = "0.1.0"

__all__ = ["RedisBackend", "RedisErrors", "RedisSettings", "RedisStore", "RedisTLSSettings"]
