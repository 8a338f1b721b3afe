import polystore
import polystore.testing

EXPECTED = [
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


def test_public_names_are_pinned() -> None:
    assert polystore.__all__ == EXPECTED


def test_public_names_are_sorted_and_importable() -> None:
    assert polystore.__all__ == sorted(polystore.__all__, key=lambda n: (n[0].islower(), n))
    for name in polystore.__all__:
        assert getattr(polystore, name) is not None


def test_testing_kit_exports_the_conformance_suite() -> None:
    assert "StoreConformance" in polystore.testing.__all__
    assert hasattr(polystore.testing, "StoreConformance")


def test_reference_name_is_an_alias_of_polystore() -> None:
    assert polystore.PolyglotPersistenceManager is polystore.Polystore
