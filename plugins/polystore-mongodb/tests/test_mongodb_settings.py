"""Settings: validation, the database name, client options, redaction."""

from __future__ import annotations

import pydantic
import pytest
from polystore_mongodb import MongoBackend, MongoSettings
from polystore_mongodb.backend import transactions_supported
from polystore_mongodb.settings import database_from_url

from polystore import Capabilities, ConfigurationError

SECRET = "pa55-w0rd-xyz"
URL_WITH_PASSWORD = f"mongodb://app:{SECRET}@db1:27017,db2:27017/appdb?replicaSet=rs0"


@pytest.mark.parametrize(
    ("url", "database"),
    [
        ("mongodb://localhost", None),
        ("mongodb://localhost/", None),
        ("mongodb://localhost:27017/app", "app"),
        ("mongodb://u:p%40ss@h1:1,h2:2/app?replicaSet=rs0", "app"),
        ("mongodb+srv://u:p@cluster0.example.net/prod?retryWrites=true", "prod"),
        ("mongodb://h/?directConnection=true", None),
        ("mongodb://h/my%2Ddb", "my-db"),
    ],
)
def test_the_database_comes_from_the_uri_path(url: str, database: str | None) -> None:
    assert database_from_url(url) == database


def test_the_database_defaults_to_polystore() -> None:
    assert MongoSettings(url="mongodb://localhost").resolved_database() == "polystore"
    assert MongoSettings(url="mongodb://h/app").resolved_database() == "app"
    assert MongoSettings(url="mongodb://h/app", database="other").resolved_database() == "other"


@pytest.mark.parametrize(
    "options",
    [
        {"url": "redis://localhost"},
        {"url": "http://localhost"},
        {"database": "a.b"},
        {"database": "a/b"},
        {"database": ""},
        {"collection_prefix": "a$"},
        {"collection_prefix": "system."},
        {"w": 0},
        {"w": -1},
        {"w": "all"},
        {"timeout": 0},
        {"min_pool_size": 10, "max_pool_size": 5},
        {"keys_per_query": 0},
        {"unknown_option": 1},
        {"plugin": "redis"},
    ],
    ids=repr,
)
def test_bad_settings_are_rejected(options: dict[str, object]) -> None:
    with pytest.raises(pydantic.ValidationError):
        MongoSettings.model_validate(options)


def test_write_concern_defaults_to_majority_with_journal() -> None:
    settings = MongoSettings()
    assert (settings.w, settings.journal) == ("majority", True)


def test_client_options_carry_timeouts_tls_and_retries() -> None:
    settings = MongoSettings(
        timeout=2.5,
        connect_timeout=1,
        tls=True,
        tls_ca_file="/etc/ca.pem",
        tls_certificate_key_file="/etc/client.pem",
        tls_certificate_key_file_password="key-secret",
        retry_writes=False,
        max_pool_size=7,
    )
    options = settings.client_options()
    assert options["timeoutMS"] == 2500
    assert options["serverSelectionTimeoutMS"] == 2500
    assert options["connectTimeoutMS"] == 1000
    assert options["tls"] is True
    assert options["tlsCAFile"] == "/etc/ca.pem"
    assert options["tlsCertificateKeyFile"] == "/etc/client.pem"
    assert options["tlsCertificateKeyFilePassword"] == "key-secret"
    assert options["retryWrites"] is False
    assert options["maxPoolSize"] == 7
    assert "tlsAllowInvalidCertificates" not in options


def test_no_timeout_means_no_timeout_ms() -> None:
    options = MongoSettings(timeout=None, server_selection_timeout=3).client_options()
    assert "timeoutMS" not in options
    assert options["serverSelectionTimeoutMS"] == 3000


def test_reprs_of_settings_and_backend_hide_the_password() -> None:
    settings = MongoSettings(url=URL_WITH_PASSWORD)
    backend = MongoBackend(settings, name="docs")
    for text in (repr(settings), str(settings), repr(backend), settings.redacted_url):
        assert SECRET not in text
    assert "db1:27017,db2:27017/appdb" in repr(backend)
    assert settings.url.get_secret_value() == URL_WITH_PASSWORD


def test_a_rejected_url_does_not_echo_its_password() -> None:
    with pytest.raises(pydantic.ValidationError) as info:
        MongoSettings(url=f"postgres://app:{SECRET}@host/db")
    assert SECRET not in str(info.value)
    assert SECRET not in repr(info.value)


def test_capabilities_before_open_follow_the_write_concern() -> None:
    durable = MongoBackend(MongoSettings())
    fast = MongoBackend(MongoSettings(w=1))
    unjournaled = MongoBackend(MongoSettings(journal=False))
    assert Capabilities.DURABLE in durable.capabilities
    assert Capabilities.DURABLE not in fast.capabilities
    assert Capabilities.DURABLE not in unjournaled.capabilities
    assert Capabilities.TRANSACTIONS not in durable.capabilities


@pytest.mark.parametrize(
    ("hello", "supported"),
    [
        ({"setName": "rs0", "maxWireVersion": 21, "logicalSessionTimeoutMinutes": 30}, True),
        ({"msg": "isdbgrid", "maxWireVersion": 21, "logicalSessionTimeoutMinutes": 30}, True),
        ({"maxWireVersion": 21, "logicalSessionTimeoutMinutes": 30}, False),
        ({"setName": "rs0", "maxWireVersion": 6, "logicalSessionTimeoutMinutes": 30}, False),
        ({"msg": "isdbgrid", "maxWireVersion": 7, "logicalSessionTimeoutMinutes": 30}, False),
        ({"setName": "rs0", "maxWireVersion": 21}, False),
    ],
)
def test_transactions_are_detected_from_hello(hello: dict[str, object], supported: bool) -> None:
    assert transactions_supported(hello) is supported


def test_a_client_that_is_not_async_is_refused() -> None:
    with pytest.raises(ConfigurationError):
        MongoBackend(MongoSettings(), client=object())  # type: ignore[arg-type]


def test_a_collection_name_too_long_for_mongodb_is_refused() -> None:
    backend = MongoBackend(MongoSettings(database="d" * 63, collection_prefix="p" * 64))
    with pytest.raises(ConfigurationError):
        backend.namespace("n" * 128)
