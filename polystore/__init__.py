"""polystore: one async DataStore interface over Redis, MongoDB, PostgreSQL, SQLite and memory.

Applications use :class:`Polystore` and the :class:`DataStore` protocol; plugin authors
subclass :class:`BaseBackend` and :class:`BaseStore` and register a :class:`BackendSpec`
through the ``polystore_register_backends`` hook.
"""

from polystore.app import PolyglotPersistenceManager, Polystore, RouteInfo
from polystore.backend import BaseBackend, validate_namespace
from polystore.base import BaseStore, BaseTransaction, new_version, new_versions
from polystore.breaker import (
    CircuitBreaker,
    CircuitBreakerSettings,
    CircuitBreakerStore,
    CircuitOpenError,
)
from polystore.codecs import Codec, JsonCodec
from polystore.collections import Collection, TransactionCollection, TypedEntry
from polystore.errormap import ErrorMap
from polystore.errors import (
    AlreadyExistsError,
    BackendNotFoundError,
    ConfigurationError,
    ConfigurationWarning,
    ConflictError,
    CrossShardError,
    IdempotencyConflictError,
    PluginError,
    PolystoreError,
    QuorumError,
    QuorumUnavailableError,
    QuorumUnknownOutcomeError,
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
from polystore.models import Session, Transaction, UserProfile
from polystore.plugins import PluginManager
from polystore.protocol import Backend, DataStore, DataStoreTransaction
from polystore.redact import redact_url
from polystore.registry import BackendRegistry, BackendSpec
from polystore.retry import RetryPolicy, RetrySettings
from polystore.settings import BackendConfig, PolystoreSettings, RouteConfig, load_settings
from polystore.types import Capabilities, Entry, Health, JSONInput, JSONValue, Scalar, Version
from polystore.wrapper import StoreWrapper

__version__ = "0.1.0"

__all__ = [
    "AlreadyExistsError",
    "Backend",
    "BackendConfig",
    "BackendNotFoundError",
    "BackendRegistry",
    "BackendSpec",
    "BaseBackend",
    "BaseStore",
    "BaseTransaction",
    "Capabilities",
    "CircuitBreaker",
    "CircuitBreakerSettings",
    "CircuitBreakerStore",
    "CircuitOpenError",
    "Codec",
    "Collection",
    "ConfigurationError",
    "ConfigurationWarning",
    "ConflictError",
    "CrossShardError",
    "DataStore",
    "DataStoreTransaction",
    "Entry",
    "ErrorMap",
    "Health",
    "IdempotencyConflictError",
    "JSONInput",
    "JSONValue",
    "JsonCodec",
    "PluginError",
    "PluginManager",
    "PolyglotPersistenceManager",
    "Polystore",
    "PolystoreError",
    "PolystoreSettings",
    "QuorumError",
    "QuorumUnavailableError",
    "QuorumUnknownOutcomeError",
    "RetryPolicy",
    "RetrySettings",
    "RouteConfig",
    "RouteInfo",
    "RouteRequirementError",
    "Scalar",
    "SerializationError",
    "Session",
    "StoreError",
    "StoreTimeoutError",
    "StoreUnavailableError",
    "StoreWrapper",
    "Transaction",
    "TransactionCollection",
    "TypedEntry",
    "UnknownOutcomeError",
    "UnsupportedOperationError",
    "UserProfile",
    "ValidationError",
    "Version",
    "hookimpl",
    "load_settings",
    "new_version",
    "new_versions",
    "redact_url",
    "validate_namespace",
]
