"""polystore: one async DataStore interface over Redis, MongoDB, PostgreSQL, SQLite and memory.

Applications use :class:`Polystore` and the :class:`DataStore` protocol; plugin authors
subclass :class:`BaseBackend` and :class:`BaseStore` and register a :class:`BackendSpec`
through the ``polystore_register_backends`` hook.
"""

from polystore.backend import BaseBackend, validate_namespace
from polystore.base import BaseStore, BaseTransaction, new_version
from polystore.codecs import Codec, CodecRegistry, JsonCodec
from polystore.errors import (
    AlreadyExistsError,
    BackendNotFoundError,
    ConfigurationError,
    ConflictError,
    PluginError,
    PolystoreError,
    RouteRequirementError,
    SerializationError,
    StoreError,
    StoreTimeoutError,
    StoreUnavailableError,
    UnknownOutcomeError,
    UnsupportedOperationError,
    ValidationError,
)
from polystore.hookspecs import hookimpl
from polystore.plugins import PluginManager
from polystore.protocol import Backend, DataStore, DataStoreTransaction
from polystore.redact import redact_url
from polystore.registry import BackendRegistry, BackendSpec
from polystore.retry import RetryPolicy, RetrySettings
from polystore.types import Capabilities, Entry, Health, JSONValue, Scalar, Version

__version__ = "0.1.0"

__all__ = [
    "AlreadyExistsError",
    "Backend",
    "BackendNotFoundError",
    "BackendRegistry",
    "BackendSpec",
    "BaseBackend",
    "BaseStore",
    "BaseTransaction",
    "Capabilities",
    "Codec",
    "CodecRegistry",
    "ConfigurationError",
    "ConflictError",
    "DataStore",
    "DataStoreTransaction",
    "Entry",
    "Health",
    "JSONValue",
    "JsonCodec",
    "PluginError",
    "PluginManager",
    "PolystoreError",
    "RetryPolicy",
    "RetrySettings",
    "RouteRequirementError",
    "Scalar",
    "SerializationError",
    "StoreError",
    "StoreTimeoutError",
    "StoreUnavailableError",
    "UnknownOutcomeError",
    "UnsupportedOperationError",
    "ValidationError",
    "Version",
    "hookimpl",
    "new_version",
    "redact_url",
    "validate_namespace",
]
