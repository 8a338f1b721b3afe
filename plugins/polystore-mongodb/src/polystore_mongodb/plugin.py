"""The plugin module named by the ``polystore`` entry point: registers the ``mongodb`` backend."""

from __future__ import annotations

from polystore.spi import BackendRegistry, BackendSpec, hookimpl
from polystore_mongodb.backend import MAX_CAPABILITIES, MongoBackend
from polystore_mongodb.settings import MongoSettings

__all__ = ["polystore_register_backends"]


@hookimpl
def polystore_register_backends(registry: BackendRegistry) -> None:
    """Register the ``mongodb`` backend."""
    registry.register(
        BackendSpec(
            name="mongodb",
            factory=MongoBackend,
            settings_model=MongoSettings,
            capabilities=MAX_CAPABILITIES,
            description="MongoDB through PyMongo's asyncio client: documents, TTL index, CAS, "
            "transactions on replica sets",
        )
    )
