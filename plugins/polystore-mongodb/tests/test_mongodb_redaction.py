"""Passwords holding URL delimiters and secret URI options: never shown, wherever they go.

Generated secrets are made of ``X``, ``Z`` and URL delimiters; nothing else in a generated
URL or in the plugin's messages holds an ``X`` or a ``Z``, so one in a text shows a secret.
"""

from __future__ import annotations

import asyncio
import logging

import pydantic
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from polystore_mongodb import MongoBackend, MongoSettings

from polystore import ConfigurationError, PluginManager, Polystore
from polystore.testing.services import ServiceEndpoint

PLUGINS = PluginManager()
SECRET_CHARS = "XZ/?#@:%&=;+,"
SECRET_OPTIONS = ["tlsCertificateKeyFilePassword", "password"]

_secret = st.builds(
    lambda a, b: a + "X" + b, st.text(SECRET_CHARS, max_size=8), st.text(SECRET_CHARS, max_size=8)
)
_option_secret = _secret.filter(lambda s: not set(s) & set("&;#@"))


def _shows_a_secret(text: str) -> bool:
    return "X" in text or "Z" in text


@st.composite
def mongodb_urls(draw: st.DrawFn) -> str:
    scheme = draw(st.sampled_from(["mongodb", "mongodb+srv", "mongo", "postgresql"]))
    hosts = ",".join(f"db{i}.example:2701{i}" for i in range(draw(st.integers(1, 3))))
    options = [f"{draw(st.sampled_from(SECRET_OPTIONS))}={draw(_option_secret)}"]
    if draw(st.booleans()):
        options.append(f"authMechanismProperties=AWS_SESSION_TOKEN:{draw(_option_secret)}")
    if draw(st.booleans()):
        options.append("replicaSet=rs0")
    query = "&".join(draw(st.permutations(options)))
    return f"{scheme}://app:{draw(_secret)}@{hosts}/appdb?{query}"


def _valid(url: str) -> MongoSettings | None:
    try:
        return MongoSettings.model_validate({"url": url})
    except pydantic.ValidationError:
        return None


def _visible(text: str) -> str:
    return text.replace("authMechanismProperties", "")


@settings(max_examples=50, deadline=None)
@given(mongodb_urls())
def test_generated_urls_show_no_secret_in_settings_backends_or_errors(url: str) -> None:
    mongo_settings = _valid(url)
    if mongo_settings is None:
        with pytest.raises(pydantic.ValidationError) as invalid:
            MongoSettings.model_validate({"url": url})
        config = {"backends": {"docs": {"plugin": "mongodb", "url": url}}}
        with pytest.raises(ConfigurationError) as info:
            asyncio.run(Polystore.from_config(config, plugins=PLUGINS).start())
        assert "backends.docs.url" in str(info.value)
        assert not _shows_a_secret(_visible(str(info.value) + str(invalid.value)))
        return
    backend = MongoBackend(mongo_settings, name="docs")
    texts = [repr(mongo_settings), str(mongo_settings), repr(backend), mongo_settings.redacted_url]
    assert not any(_shows_a_secret(_visible(text)) for text in texts), texts
    assert "db0.example:27010" in mongo_settings.redacted_url
    assert "/appdb?" in mongo_settings.redacted_url


@pytest.mark.asyncio
async def test_secret_uri_options_never_reach_reprs_or_logs_of_an_open_backend(
    mongodb_service: ServiceEndpoint, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    url = f"{mongodb_service.url}&authMechanismProperties=AWS_SESSION_TOKEN:XZ-session-token"
    config = {
        "backends": {"docs": {"plugin": "mongodb", "url": url, "timeout": 10}},
        "routes": {"profiles": {"backend": "docs", "requires": ["query"]}},
    }
    async with Polystore.from_config(config) as ps:
        await ps.route("profiles").save("k", {"v": 1})
        assert await ps.route("profiles").get("k") == {"v": 1}
        texts = [repr(ps), repr(ps.settings), repr(ps.backends["docs"])]
        texts.append(str(await ps.backends["docs"].health()))
        await ps.route("profiles").delete("k")
    texts += [record.getMessage() for record in caplog.records]
    assert any("opened" in text for text in texts)
    assert [text for text in texts if "session-token" in text] == []


@pytest.mark.asyncio
async def test_an_option_pymongo_refuses_is_reported_without_the_secrets() -> None:
    url = (
        "mongodb://app:XZ%2Fpass@127.0.0.1:9/appdb?tls=false"
        "&tlsCertificateKeyFilePassword=XZ-key-pass"
    )
    config = {"backends": {"docs": {"plugin": "mongodb", "url": url}}}
    with pytest.raises(ConfigurationError, match="tls") as info:
        await Polystore.from_config(config, plugins=PLUGINS).start()
    assert not _shows_a_secret(str(info.value))
