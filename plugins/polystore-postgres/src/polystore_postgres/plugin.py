"""The pluggy entry point: registers the ``postgres`` backend.

Named by the distribution's entry point ``postgres = "polystore_postgres.plugin"`` in the
``polystore`` group; importing it has no side effects.
"""

from __future__ import annotations

from polystore.spi import BackendRegistry, BackendSpec, hookimpl
from polystore_postgres.backend import CAPABILITIES, PostgresBackend
from polystore_postgres.settings import PostgresSettings

__all__ = ["polystore_register_backends"]


@hookimpl
def polystore_register_backends(registry: BackendRegistry) -> None:
    """Register the ``postgres`` backend."""
    registry.register(
        BackendSpec(
            name="postgres",
            factory=PostgresBackend,
            settings_model=PostgresSettings,
            capabilities=CAPABILITIES,
            description="PostgreSQL via asyncpg: CAS, TTL, serializable transactions",
        )
    )
