"""Secrets never show, whatever the URL: properties over generated URLs.

Secrets are drawn from upper-case letters and URL delimiters; every other part of a
generated URL (scheme, user, hosts, database, option names and plain values) is lower case.
So a redacted text that holds an upper-case letter shows a piece of a secret.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from polystore import Polystore, load_settings
from polystore.redact import (
    REDACTED,
    redact_options,
    redact_text,
    redact_url,
    url_secrets,
    userinfo_problem,
)

SCHEMES = ["redis", "rediss", "mongodb", "mongodb+srv", "postgresql", "postgres", "unix"]
SECRET_OPTIONS = [
    "password",
    "sslpassword",
    "tlscertificatekeyfilepassword",
    "access_token",
    "client_secret",
    "api_key",
]
PLAIN_OPTIONS = ["replicaset", "sslmode", "appname", "db", "w", "connecttimeoutms"]
DELIMITERS = "/?#@:%&=;+ ,"
_lower = st.text(string.ascii_lowercase + string.digits, min_size=1, max_size=8)
# At least one upper-case letter, so that any piece shown is detectable.
_secret = st.builds(
    lambda a, b, c: a + b + c,
    st.text(string.ascii_uppercase + DELIMITERS, max_size=10),
    st.sampled_from(string.ascii_uppercase),
    st.text(string.ascii_uppercase + DELIMITERS, max_size=10),
)


@dataclass(frozen=True)
class GeneratedUrl:
    url: str
    hosts: list[str]
    database: str
    secrets: list[str]


_NAMES = re.compile(r"authMechanismProperties|PolystoreSettings|BackendConfig|RouteConfig")


def _shows_a_secret(text: str) -> bool:
    return re.search(r"[A-Z]", _NAMES.sub("", text)) is not None


@st.composite
def urls(
    draw: st.DrawFn, password: st.SearchStrategy[str] = _secret, option_chars: str = "&;#"
) -> GeneratedUrl:
    scheme = draw(st.sampled_from(SCHEMES))
    user = draw(st.one_of(st.just(""), _lower))
    secret = draw(password)
    hosts = [
        f"{draw(_lower)}.example:{draw(st.integers(1, 65535))}"
        for _ in range(draw(st.integers(1, 3)))
    ]
    database = draw(_lower)
    options: list[str] = []
    secrets = [secret]
    for _ in range(draw(st.integers(0, 4))):
        if draw(st.booleans()):
            value = draw(_secret.filter(lambda s: not set(s) & set(option_chars)))
            secrets.append(value)
            name = draw(st.sampled_from(SECRET_OPTIONS))
            options.append(f"{name}={value}")
        else:
            options.append(f"{draw(st.sampled_from(PLAIN_OPTIONS))}={draw(_lower)}")
    if draw(st.booleans()):
        token = draw(_secret.filter(lambda s: not set(s) & set(option_chars)))
        secrets.append(token)
        options.append(f"authMechanismProperties=aws_session_token:{token}")
    query = f"?{'&'.join(options)}" if options else ""
    url = f"{scheme}://{user}:{secret}@{','.join(hosts)}/{database}{query}"
    return GeneratedUrl(url, hosts, database, secrets)


@given(urls())
def test_a_redacted_url_shows_no_piece_of_any_secret(generated: GeneratedUrl) -> None:
    shown = redact_url(generated.url)
    assert not _shows_a_secret(shown), shown


@given(urls(password=_secret.filter(lambda s: "=" not in s), option_chars="&;#@"))
def test_a_redacted_url_keeps_hosts_and_database_visible(generated: GeneratedUrl) -> None:
    shown = redact_url(generated.url)
    assert all(host in shown for host in generated.hosts), shown
    assert f"/{generated.database}" in shown
    assert REDACTED in shown


@given(urls())
def test_url_secrets_name_every_secret_of_the_url(generated: GeneratedUrl) -> None:
    found = url_secrets(generated.url)
    assert all(any(secret in s for s in found) for secret in generated.secrets)


# In free text a URL ends at white space: secrets with spaces need redact_text(secrets=...).
@given(urls(password=_secret.filter(lambda s: " " not in s), option_chars="&;# "), _lower)
def test_free_text_quoting_a_url_shows_no_secret(generated: GeneratedUrl, word: str) -> None:
    text = f"cannot connect to {generated.url} ({word})"
    assert not _shows_a_secret(redact_text(text))


@given(urls(), _secret)
def test_known_secrets_are_scrubbed_from_free_text(generated: GeneratedUrl, other: str) -> None:
    text = f"driver said: bad value {other!r} near {generated.secrets[0]!r}"
    shown = redact_text(text, [*url_secrets(generated.url), other])
    assert generated.secrets[0] not in shown
    assert other not in shown


@given(urls())
def test_options_show_no_secret(generated: GeneratedUrl) -> None:
    options = {
        "plugin": "redis",
        "url": generated.url,
        "password": generated.secrets[0],
        "tls": {"key_password": generated.secrets[0], "key_file": "/etc/k.pem"},
        "seeds": [generated.url],
    }
    shown = repr(redact_options(options))
    assert not _shows_a_secret(shown)
    assert "/etc/k.pem" in shown


@pytest.mark.parametrize(
    "url",
    [
        "redis://:pa/ss?w#rd@host/0",
        "postgresql://app:pa/ss@db:5432/app",
        "mongodb://app:pa#ss@db/app",
    ],
)
def test_an_unescaped_delimiter_in_a_password_is_explained_without_the_password(
    url: str,
) -> None:
    problem = userinfo_problem(url)
    assert problem is not None
    assert "percent-encode" in problem
    assert "pa" not in problem.replace("password", "")


def test_a_percent_encoded_password_is_fine() -> None:
    assert userinfo_problem("redis://:pa%2Fss%3Fw%23rd@host/0") is None
    assert redact_url("redis://:pa%2Fss%3Fw%23rd@host/0") == "redis://:***@host/0"


def test_an_at_sign_in_an_option_hides_the_whole_url() -> None:
    assert redact_url("postgresql://h/db?password=p@ss") == "postgresql://***"
    assert "p@ss" in url_secrets("postgresql://h/db?password=p@ss")


_BACKENDS = {
    "redis": "redis",
    "rediss": "redis",
    "mongodb": "mongodb",
    "mongodb+srv": "mongodb",
    "postgresql": "postgres",
    "postgres": "postgres",
}


@settings(max_examples=60, deadline=None)
@given(urls().filter(lambda g: g.url.split("://")[0] in _BACKENDS))
def test_settings_reprs_show_no_secret(generated: GeneratedUrl) -> None:
    scheme = generated.url.split("://")[0]
    config = {"backends": {"b": {"plugin": _BACKENDS[scheme], "url": generated.url}}}
    loaded = load_settings(config)
    for text in (repr(loaded), str(loaded), repr(loaded.backends["b"])):
        assert not _shows_a_secret(text), text


@pytest.mark.parametrize(
    ("plugin", "url", "shown"),
    [
        ("redis", "redis://:pa/ss?w#rd@host/0", "redis://:***@host/0"),
        ("postgres", "postgresql://app:pa/ss?w#rd@db:5432/app", "postgresql://app:***@db:5432/app"),
        ("mongodb", "mongodb://app:pa/ss?w#rd@db1,db2/app", "mongodb://app:***@db1,db2/app"),
        (
            "mongodb",
            "mongodb://db/app?tlsCertificateKeyFilePassword=pa/ss&authMechanismProperties="
            "AWS_SESSION_TOKEN:w#rd",
            "mongodb://db/app?tlsCertificateKeyFilePassword=***&authMechanismProperties=***",
        ),
    ],
)
def test_the_reported_urls_are_redacted_in_the_settings_repr(
    plugin: str, url: str, shown: str
) -> None:
    loaded = Polystore.from_config({"backends": {"b": {"plugin": plugin, "url": url}}}).settings
    for text in (repr(loaded), str(loaded)):
        assert shown in text
        assert "pa/ss" not in text
        assert "w#rd" not in text
