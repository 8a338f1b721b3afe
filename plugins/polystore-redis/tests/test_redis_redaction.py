"""Passwords holding URL delimiters, and secret options: never shown, wherever the URL goes.

Generated secrets are made of ``X``, ``Z`` and URL delimiters; nothing else in a generated
URL or in the plugin's messages holds an ``X`` or a ``Z``, so one in a text shows a secret.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from urllib.parse import quote

import pydantic
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from polystore_redis import RedisBackend, RedisSettings

from polystore import ConfigurationError, PluginManager, Polystore
from polystore.testing import LocalRedisServer

StartRedis = Callable[..., LocalRedisServer]
PLUGINS = PluginManager()
SECRET_CHARS = "XZ/?#@:%&=;+"
PASSWORD = "pa/ss?w#rd@X:Z%"
"""Every delimiter a password may hold in a URL."""

_secret = st.builds(
    lambda a, b: a + "X" + b, st.text(SECRET_CHARS, max_size=8), st.text(SECRET_CHARS, max_size=8)
)
_option_secret = _secret.filter(lambda s: not set(s) & set("&;#@"))


def _shows_a_secret(text: str) -> bool:
    return "X" in text or "Z" in text


@st.composite
def redis_urls(draw: st.DrawFn) -> str:
    scheme = draw(st.sampled_from(["redis", "rediss", "redis+cluster", "unix", "http"]))
    user = draw(st.sampled_from(["", "default", "app"]))
    options = draw(st.lists(st.sampled_from(["password", "db", "token"]), max_size=3))
    query = "&".join(f"{n}={'0' if n == 'db' else draw(_option_secret)}" for n in options)
    return f"{scheme}://{user}:{draw(_secret)}@cache.example:6379/0" + (f"?{query}" * bool(query))


def _valid(url: str) -> RedisSettings | None:
    try:
        return RedisSettings.model_validate({"url": url})
    except pydantic.ValidationError:
        return None


@settings(max_examples=50, deadline=None)
@given(redis_urls())
def test_generated_urls_show_no_secret_in_settings_backends_or_errors(url: str) -> None:
    redis_settings = _valid(url)
    if redis_settings is None:
        with pytest.raises(pydantic.ValidationError) as invalid:
            RedisSettings.model_validate({"url": url})
        config = {"backends": {"cache": {"plugin": "redis", "url": url}}}
        with pytest.raises(ConfigurationError) as info:
            asyncio.run(Polystore.from_config(config, plugins=PLUGINS).start())
        assert "backends.cache.url" in str(info.value)
        assert not _shows_a_secret(str(info.value) + str(invalid.value))
        return
    try:
        backend = RedisBackend(redis_settings, name="cache")
    except ConfigurationError as exc:  # redis-py refused the URL: the message is checked
        texts = [str(exc)]
    else:
        texts = [repr(backend)]
    texts += [repr(redis_settings), str(redis_settings), redis_settings.redacted_url()]
    assert not any(_shows_a_secret(text) for text in texts), texts
    assert "cache.example:6379" in redis_settings.redacted_url()


@pytest.mark.asyncio
async def test_an_unescaped_delimiter_in_the_password_is_a_configuration_error() -> None:
    config = {"backends": {"cache": {"plugin": "redis", "url": f"redis://:{PASSWORD}@h:6379/0"}}}
    with pytest.raises(ConfigurationError, match="percent-encode") as info:
        await Polystore.from_config(config).start()
    assert "redis://:***@h:6379/0" in str(info.value)
    assert not _shows_a_secret(str(info.value))


@pytest.mark.asyncio
async def test_a_percent_encoded_password_with_every_delimiter_logs_in_and_never_shows(
    private_redis: StartRedis, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    server = private_redis("--requirepass", PASSWORD)
    url = f"redis://:{quote(PASSWORD, safe='')}@127.0.0.1:{server.port}/0"
    config = {
        "backends": {"cache": {"plugin": "redis", "url": url, "timeout": 2}},
        "routes": {"sessions": {"backend": "cache", "requires": ["ttl"]}},
    }
    async with Polystore.from_config(config) as ps:
        await ps.route("sessions").save("k", {"v": 1})
        assert await ps.route("sessions").get("k") == {"v": 1}
        texts = [repr(ps), repr(ps.settings), repr(ps.backends["cache"])]
        texts.append(str(await ps.backends["cache"].health()))
    texts += [record.getMessage() for record in caplog.records]
    assert any("opened" in text for text in texts)
    assert [text for text in texts if _shows_a_secret(text) or "pa/ss" in text] == []
