"""polystore's test kit: the conformance suite and real-server fixtures.

Enable the fixtures (``redis_service``, ``postgres_service``, ``mongodb_service``,
``redis_cluster_service``, and the per-test stores ``redis_store``, ``postgres_store``,
``mongodb_store``) in a test suite's top-level ``conftest.py``::

    pytest_plugins = ["polystore.testing"]

start a dedicated private server for a fault test with ``LocalRedisServer()``,
``LocalPostgresServer()`` or ``LocalMongoServer()`` (``start()``, ``kill()``, ``pause()``,
``close()``), a PostgreSQL primary with a streaming standby with
``LocalPostgresReplicaSet()`` (fixture ``postgres_replica_service``), a Redis primary,
replica and three Sentinels with ``LocalRedisSentinelSet()``, and run the
conformance suite against a backend by subclassing :class:`StoreConformance`.

The package imports on every platform; private server processes need a Unix system, and
``pause()`` needs Linux (it stops every thread, found through ``/proc``).
"""

from polystore.testing._cluster import LocalRedisCluster
from polystore.testing._replica import LocalPostgresReplicaSet, LocalPostgresStandby
from polystore.testing._sentinel import LocalRedisSentinelSet
from polystore.testing._servers import LocalMongoServer, LocalPostgresServer, LocalRedisServer
from polystore.testing.conformance import StoreConformance, eventually, requires
from polystore.testing.fixtures import (
    mongodb_service,
    postgres_replica_service,
    postgres_service,
    pytest_addoption,
    pytest_configure,
    redis_cluster_service,
    redis_service,
)
from polystore.testing.services import ServiceEndpoint, ServiceUnavailable, resolve_service
from polystore.testing.stores import mongodb_store, postgres_store, redis_store

__all__ = [
    "LocalMongoServer",
    "LocalPostgresReplicaSet",
    "LocalPostgresServer",
    "LocalPostgresStandby",
    "LocalRedisCluster",
    "LocalRedisSentinelSet",
    "LocalRedisServer",
    "ServiceEndpoint",
    "ServiceUnavailable",
    "StoreConformance",
    "eventually",
    "mongodb_service",
    "mongodb_store",
    "postgres_replica_service",
    "postgres_service",
    "postgres_store",
    "pytest_addoption",
    "pytest_configure",
    "redis_cluster_service",
    "redis_service",
    "redis_store",
    "requires",
    "resolve_service",
]
