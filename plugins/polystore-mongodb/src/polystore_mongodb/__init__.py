"""MongoDB backend for polystore, on PyMongo's native asyncio client.

Configure it as ``plugin = "mongodb"``, or build it directly::

    from polystore_mongodb import MongoBackend, MongoSettings

    async with MongoBackend(MongoSettings(url="mongodb://localhost:27017/app")) as backend:
        profiles = backend.namespace("profiles")
        await profiles.save("u1", {"name": "Ada"})
"""

from polystore_mongodb.backend import MongoBackend
from polystore_mongodb.settings import MongoSettings
from polystore_mongodb.store import MongoDBStore
from polystore_mongodb.transaction import MongoTransaction

__version__ = "0.1.0"

__all__ = ["MongoBackend", "MongoDBStore", "MongoSettings", "MongoTransaction"]
