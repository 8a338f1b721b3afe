"""Passwords holding URL delimiters and secret DSN options: never shown, wherever they go.

Generated secrets are made of ``X``, ``Z`` and URL delimiters; nothing else in a generated
URL or in the plugin's messages holds an ``X`` or a ``Z``, so one in a text shows a secret.
"""

from __future__ import annotations

import asyncio

import pydantic
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from polystore_postgres import PostgresBackend, PostgresSettings
from polystore_postgres.errors import scrub

from polystore import ConfigurationError, PluginManager, Polystore

PLUGINS = PluginManager()
SECRET_CHARS = "XZ/?#@:%&=;+,"

_secret = st.builds(
    lambda a, b: a + "X" + b, st.text(SECRET_CHARS, max_size=8), st.text(SECRET_CHARS, max_size=8)
)
_option_secret = _secret.filter(lambda s: not set(s) & set("&;#@"))


def _shows_a_secret(text: str) -> bool:
    return "X" in text or "Z" in text


@st.composite
def postgres_urls(draw: st.DrawFn) -> str:
    scheme = draw(st.sampled_from(["postgresql", "postgres"]))
    options = draw(st.lists(st.sampled_from(["password", "sslpassword", "sslmode"]), max_size=3))
    query = "&".join(f"{n}={'prefer' if n == 'sslmode' else draw(_option_secret)}" for n in options)
    return f"{scheme}://app:{draw(_secret)}@db.example:5432/appdb" + f"?{query}" * bool(query)


def _valid(url: str) -> PostgresSettings | None:
    try:
        return PostgresSettings.model_validate({"url": url})
    except pydantic.ValidationError:
        return None


@settings(max_examples=50, deadline=None)
@given(postgres_urls())
def test_generated_urls_show_no_secret_in_settings_backends_or_errors(url: str) -> None:
    pg_settings = _valid(url)
    if pg_settings is None:
        with pytest.raises(pydantic.ValidationError) as invalid:
            PostgresSettings.model_validate({"url": url})
        config = {"backends": {"ledger": {"plugin": "postgres", "url": url}}}
        with pytest.raises(ConfigurationError) as info:
            asyncio.run(Polystore.from_config(config, plugins=PLUGINS).start())
        assert "backends.ledger.url" in str(info.value)
        assert not _shows_a_secret(str(info.value) + str(invalid.value))
        return
    backend = PostgresBackend(pg_settings, name="ledger")
    quoted = f"driver could not parse {url!r}"
    texts = [repr(pg_settings), str(pg_settings), repr(backend), pg_settings.display_url]
    texts.append(scrub(quoted, backend.secrets))
    assert not any(_shows_a_secret(text) for text in texts), texts
    assert "db.example:5432/appdb" in pg_settings.display_url


@pytest.mark.asyncio
async def test_an_unescaped_delimiter_in_the_password_is_a_configuration_error() -> None:
    url = "postgresql://app:XZ/pa?ss#w@db.example:5432/appdb"
    config = {"backends": {"ledger": {"plugin": "postgres", "url": url}}}
    with pytest.raises(ConfigurationError, match="percent-encode") as info:
        await Polystore.from_config(config, plugins=PLUGINS).start()
    assert "postgresql://app:***@db.example:5432/appdb" in str(info.value)
    assert not _shows_a_secret(str(info.value))
