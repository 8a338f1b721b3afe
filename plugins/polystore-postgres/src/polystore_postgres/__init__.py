"""PostgreSQL backend for polystore.

Each namespace is one table in a schema (``polystore`` by default); values keep their
exact JSON text; compare-and-set, create-only, TTL, ``find`` (jsonb containment served
by a GIN index), streaming ``scan`` and serializable transactions are each one
statement or one connection::

    from polystore_postgres import PostgresBackend, PostgresSettings

    async with PostgresBackend(PostgresSettings(url="postgresql://app@db/app")) as backend:
        ledger = backend.namespace("ledger")
        await ledger.save("tx-1", {"amount": "12.30", "currency": "EUR"}, if_absent=True)
"""

from polystore_postgres.backend import CAPABILITIES, PostgresBackend
from polystore_postgres.errors import (
    PostgresStoreError,
    PostgresTimeoutError,
    PostgresUnavailableError,
    PostgresUnknownOutcomeError,
    SerializationConflictError,
)
from polystore_postgres.partitions import MaintenanceReport, Partitioning
from polystore_postgres.settings import PostgresSettings
from polystore_postgres.store import PostgreSQLStore
from polystore_postgres.transaction import PostgresTransaction

__version__ = "0.1.0"

__all__ = [
    "CAPABILITIES",
    "MaintenanceReport",
    "Partitioning",
    "PostgreSQLStore",
    "PostgresBackend",
    "PostgresSettings",
    "PostgresStoreError",
    "PostgresTimeoutError",
    "PostgresTransaction",
    "PostgresUnavailableError",
    "PostgresUnknownOutcomeError",
    "SerializationConflictError",
]
