"""Fixtures of the polystore-postgres tests: private PostgreSQL servers from polystore.testing."""

from __future__ import annotations

from polystore.testing.fixtures import postgres_replica_service, postgres_service

__all__ = ["postgres_replica_service", "postgres_service"]
