"""Fixtures of the polystore-redis tests: private Redis servers from polystore.testing."""

from __future__ import annotations

from polystore.testing.fixtures import redis_cluster_service, redis_service

__all__ = ["redis_cluster_service", "redis_service"]
