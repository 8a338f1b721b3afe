"""Malformed backend URLs are configuration errors raised before any I/O, for every plugin,
and their messages never quote the password."""

from __future__ import annotations

import pydantic
import pytest
from polystore_mongodb import MongoSettings
from polystore_postgres import PostgresSettings
from polystore_redis import RedisSettings

from polystore import Polystore
from polystore.errors import ConfigurationError

SECRET = "s3cr3t-pw"

MODELS: dict[str, type[pydantic.BaseModel]] = {
    "mongodb": MongoSettings,
    "redis": RedisSettings,
    "postgres": PostgresSettings,
}

MALFORMED = [
    ("mongodb", "mongodb://127.0.0.1:99999/"),
    ("mongodb", "mongodb://127.0.0.1:27o17/"),
    ("mongodb", f"mongodb://app:{SECRET}@127.0.0.1:abc/"),
    ("mongodb", f"mongodb://app:{SECRET}@db1:27017,db2:x/app"),
    ("mongodb", "mongodb://"),
    ("mongodb", f"mongodb://app:{SECRET}@[::1/app"),
    ("mongodb", "mongodb://db/?wtimeoutMS=soon"),
    ("mongodb", "mongodb+srv://cluster0.example.net:27017/"),
    ("mongodb", "http://db:27017/"),
    ("redis", "redis://127.0.0.1:99999/0"),
    ("redis", "redis://127.0.0.1:63x9/0"),
    ("redis", f"redis://:{SECRET}@127.0.0.1:abc/0"),
    ("redis", "redis://127.0.0.1:0/0"),
    ("redis", "redis://127.0.0.1:6379/cache"),
    ("redis", "redis://127.0.0.1:6379/0?db=one"),
    ("redis", "unix://"),
    ("redis", "http://127.0.0.1:6379/0"),
    ("redis", "garbage"),
    ("postgres", "postgresql://127.0.0.1:99999/app"),
    ("postgres", "postgresql://127.0.0.1:54x2/app"),
    ("postgres", f"postgresql://app:{SECRET}@127.0.0.1:abc/app"),
    ("postgres", f"postgresql://app:{SECRET}@db1:5432,db2:x/app"),
    ("postgres", f"postgresql://app:{SECRET}@[::1/app"),
    ("postgres", "postgresql://db/app?sslmode=sometimes"),
    ("postgres", "postgresql://db/app?port=high"),
    ("postgres", "mysql://db/app"),
    ("postgres", "garbage"),
]

WELL_FORMED = [
    ("mongodb", f"mongodb://app:{SECRET}@db1:27017,db2:27018/app?replicaSet=rs0"),
    ("mongodb", "mongodb://[::1]:27017/?directConnection=true"),
    ("mongodb", "mongodb+srv://app:pw@cluster0.example.net/prod?retryWrites=true"),
    ("redis", f"redis://:{SECRET}@db:6379/3"),
    ("redis", "redis://[::1]:6379"),
    ("redis", "unix:///run/redis.sock?db=2"),
    ("redis", "rediss+cluster://db:7000"),
    ("postgres", f"postgres://app:{SECRET}@db1:5432,db2:5433/app?sslmode=verify-full"),
    ("postgres", "postgresql://[::1]:5432/app"),
    ("postgres", "postgresql:///app?host=/run/postgresql&port=5432"),
]


@pytest.mark.parametrize(("plugin", "url"), MALFORMED, ids=[u for _, u in MALFORMED])
def test_the_settings_model_refuses_a_malformed_url_without_connecting(
    plugin: str, url: str
) -> None:
    with pytest.raises(pydantic.ValidationError) as raised:
        MODELS[plugin](url=url)

    assert SECRET not in str(raised.value)


@pytest.mark.asyncio
@pytest.mark.parametrize(("plugin", "url"), MALFORMED, ids=[u for _, u in MALFORMED])
async def test_start_reports_a_malformed_url_as_a_configuration_error_naming_the_backend(
    plugin: str, url: str
) -> None:
    ps = Polystore.from_config(
        {"backends": {"main": {"plugin": plugin, "url": url}}, "routes": {"r": {"backend": "main"}}}
    )

    with pytest.raises(ConfigurationError) as raised:
        await ps.start()

    assert "backends.main.url" in str(raised.value)
    shown = [str(raised.value), repr(raised.value)]
    cause = raised.value.__cause__
    while cause is not None:
        shown.append(str(cause))
        cause = cause.__cause__
    assert all(SECRET not in text for text in shown)


@pytest.mark.parametrize(("plugin", "url"), WELL_FORMED, ids=[u for _, u in WELL_FORMED])
def test_well_formed_urls_are_accepted(plugin: str, url: str) -> None:
    settings = MODELS[plugin](url=url)

    assert settings.url is not None
    assert settings.url.get_secret_value() == url


@pytest.mark.asyncio
async def test_an_option_pymongo_refuses_when_building_its_client_is_a_configuration_error() -> (
    None
):
    url = f"mongodb://app:{SECRET}@127.0.0.1:27017/?appName=x"
    ps = Polystore.from_config(
        {
            "backends": {"docs": {"plugin": "mongodb", "url": url, "app_name": "x" * 200}},
            "routes": {"r": {"backend": "docs"}},
        }
    )

    with pytest.raises(ConfigurationError) as raised:
        await ps.start()

    assert raised.value.backend == "docs"
    assert "appname" in str(raised.value).lower()
    assert SECRET not in str(raised.value)
