"""Settings, identifier rules and the namespace-to-table mapping (no server needed)."""

from __future__ import annotations

import pydantic
import pytest
from polystore_postgres import PostgresBackend, PostgresSettings
from polystore_postgres.naming import IDENTIFIER, check_identifier, table_for_namespace
from polystore_postgres.ops import containment_filter, prefix_upper_bound
from polystore_postgres.plugin import polystore_register_backends

from polystore import BackendRegistry, Capabilities, ConfigurationError, PluginManager

PASSWORD = "s3cr3t-Pa55"


def test_unknown_options_are_rejected() -> None:
    with pytest.raises(pydantic.ValidationError):
        PostgresSettings.model_validate({"plugin": "postgres", "hots": "db"})


def test_the_plugin_field_only_accepts_postgres() -> None:
    with pytest.raises(pydantic.ValidationError):
        PostgresSettings.model_validate({"plugin": "redis"})


def test_schema_is_configured_under_the_key_schema() -> None:
    settings = PostgresSettings.model_validate({"plugin": "postgres", "schema": "ledger"})
    assert settings.db_schema == "ledger"


@pytest.mark.parametrize(
    "schema", ['x"; DROP TABLE t; --', "Upper", "1starts_with_digit", "a" * 64, "pg_toast", ""]
)
def test_a_schema_that_is_not_a_safe_identifier_is_rejected(schema: str) -> None:
    with pytest.raises(pydantic.ValidationError):
        PostgresSettings(schema=schema)


def test_min_pool_size_above_max_is_rejected() -> None:
    with pytest.raises(pydantic.ValidationError):
        PostgresSettings(min_pool_size=5, max_pool_size=2)


def test_repr_and_dump_hide_the_password_of_the_url() -> None:
    settings = PostgresSettings(url=f"postgresql://app:{PASSWORD}@db.example:5432/app")
    shown = [repr(settings), str(settings), settings.model_dump_json(), settings.display_url]
    assert all(PASSWORD not in text for text in shown)
    assert settings.display_url == "postgresql://app:***@db.example:5432/app"


def test_repr_hides_a_password_given_as_a_part() -> None:
    settings = PostgresSettings(host="db", user="app", password=PASSWORD, database="app")
    backend = PostgresBackend(settings)
    assert PASSWORD not in repr(settings)
    assert PASSWORD not in repr(backend)
    assert settings.display_url == "postgresql://app:***@db/app"


def test_the_shown_url_merges_parts_over_the_url_and_hides_the_password() -> None:
    settings = PostgresSettings(
        url="postgresql://app@db:5432/app?sslmode=require", password=PASSWORD, port=6432
    )
    assert settings.display_url == "postgresql://app:***@db:6432/app?sslmode=require"
    assert PASSWORD not in repr(settings)


def test_connect_arguments_carry_the_password_and_the_tls_options() -> None:
    settings = PostgresSettings(
        url="postgresql://app@db/app?sslmode=prefer",
        password=PASSWORD,
        sslmode="verify-full",
        sslrootcert="/etc/ssl/ca.pem",
        statement_timeout=2.5,
    )
    kwargs = settings.connect_kwargs()
    assert kwargs["password"] == PASSWORD
    assert "sslmode=verify-full" in kwargs["dsn"]
    assert "sslmode=prefer" not in kwargs["dsn"]
    assert "sslrootcert=%2Fetc%2Fssl%2Fca.pem" in kwargs["dsn"]
    assert kwargs["server_settings"]["statement_timeout"] == "2500"


def test_secrets_lists_passwords_from_the_url_and_the_fields() -> None:
    settings = PostgresSettings(url="postgresql://app:p%40ss@db/app", sslpassword="keypw")
    assert {"p%40ss", "p@ss", "keypw"} <= set(settings.secrets())


def test_identifiers_follow_the_allow_list() -> None:
    assert check_identifier("polystore_1") == "polystore_1"
    for bad in ["a-b", "A", "a b", 'a"b', "é", "", "_" * 64]:
        with pytest.raises(ConfigurationError):
            check_identifier(bad)


def test_namespaces_map_to_stable_safe_distinct_table_names() -> None:
    namespaces = ["a.b", "a-b", "a/b", "a:b", "A.b", "cache/sessions", "x" * 128, "-", "_"]
    tables = [table_for_namespace(ns) for ns in namespaces]
    assert len(set(tables)) == len(namespaces)
    assert all(IDENTIFIER.fullmatch(t) and len(t) <= 52 for t in tables)
    assert table_for_namespace("cache/sessions") == tables[5]
    assert tables[5].startswith("kv_cache_sessions_")


def test_prefix_upper_bound_is_the_next_string_in_code_point_order() -> None:
    assert prefix_upper_bound("") is None
    assert prefix_upper_bound("user:") == "user;"
    assert prefix_upper_bound("a\U0010ffff") == "b"
    assert prefix_upper_bound("\U0010ffff") is None
    assert prefix_upper_bound("a\ud7ff") == "a\ue000"


def test_containment_filter_leaves_out_what_jsonb_cannot_compare_exactly() -> None:
    where = {"s": "plain", "nul": "a\x00b", "n": 3, "big": 2**60, "f": 1.5, "b": True, "z": None}
    assert containment_filter(where) == '{"s":"plain","n":3,"f":1.5,"b":true,"z":null}'


def test_the_plugin_registers_the_postgres_backend() -> None:
    registry = BackendRegistry()
    polystore_register_backends(registry)
    spec = registry.get("postgres")
    assert spec.capabilities == Capabilities.parse(
        ["ttl", "cas", "transactions", "query", "scan", "durable", "shared"]
    )
    backend = spec.build({"plugin": "postgres", "schema": "s1"}, instance_name="ledger")
    assert isinstance(backend, PostgresBackend)
    assert backend.name == "ledger"
    assert backend.settings.db_schema == "s1"


def test_the_entry_point_makes_the_backend_available_to_the_plugin_manager() -> None:
    spec = PluginManager().backends.get("postgres")
    assert spec.factory is PostgresBackend
    assert spec.distribution == "polystore-postgres"


def test_the_public_api_is_pinned() -> None:
    import polystore_postgres

    assert polystore_postgres.__all__ == [
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
    assert all(hasattr(polystore_postgres, name) for name in polystore_postgres.__all__)
