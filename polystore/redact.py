"""Redaction of secrets in URLs, options and free text, for reprs, logs and error messages.

Every backend shows URLs through :func:`redact_url`, which works on the structure of a URL
rather than on a parser's idea of it: a password holding an unescaped ``/``, ``?``, ``#`` or
``@`` makes :func:`urllib.parse.urlsplit` cut the URL in the wrong place, so a parser-based
redaction would print part of the password as a path, a query or a fragment. Here:

- everything between ``://`` and the *last* ``@`` is user-info; only the user name (up to the
  first ``:``) stays visible, the rest is replaced by ``***``;
- every query option whose name or value carries a password, token, secret or key
  (``password``, ``tlsCertificateKeyFilePassword``, ``authMechanismProperties`` holding
  ``AWS_SESSION_TOKEN:...``, ``api_key``, ...) has its value replaced by ``***``.

An ``@`` in a query option (``appName=me@corp``) cannot be told from a password holding
``?`` and ``=``, so such a URL is shown as ``scheme://***``: percent-encode it (``%40``) to
keep the host visible. Hiding too much is the price of never showing a password.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import unquote

__all__ = [
    "REDACTED",
    "is_secret_name",
    "redact_options",
    "redact_text",
    "redact_url",
    "url_secrets",
    "userinfo_problem",
]

REDACTED = "***"

_SECRET_PARTS = ("pass", "pwd", "secret", "token", "credential")
_SECRET_NAMES = frozenset({"authmechanismproperties"})
_SECRET_VALUE_PARTS = (*_SECRET_PARTS, "key")
_URL_NAMES = ("url", "uri", "dsn")
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://")
_URL_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://\S+")
_OPTION_SEPARATORS = re.compile(r"([&;])")
_OPTION_IN_USERINFO = re.compile(r"[?#].*=", re.DOTALL)
_KV_SECRET = re.compile(
    r"(?i)\b([a-z_]*(?:password|passwd|pwd|secret|token)[a-z_]*)(\s*[=:]\s*)"
    r"('[^']*'|\"[^\"]*\"|[^\s&;,)]+)"
)


def is_secret_name(name: str) -> bool:
    """Whether an option called ``name`` holds a secret.

    True for names carrying ``pass``, ``pwd``, ``secret``, ``token`` or ``credential``
    anywhere, names ending in ``key`` (``api_key``, ``secretKey``), and MongoDB's
    ``authMechanismProperties`` (which can carry an AWS session token).
    """
    lowered = unquote(name).lower().replace("-", "_")
    if lowered.replace("_", "") in _SECRET_NAMES or lowered.endswith("key"):
        return True
    return any(part in lowered for part in _SECRET_PARTS)


def _is_secret_value(value: str) -> bool:
    lowered = unquote(value).lower()
    return any(part in lowered for part in _SECRET_VALUE_PARTS)


def _split(url: str) -> tuple[str, str | None, str, str] | None:
    """``(scheme://, userinfo or None, hosts and path, options)``, or None without ``://``."""
    match = _SCHEME.match(url)
    if match is None:
        return None
    scheme, rest = match.group(), url[match.end() :]
    userinfo: str | None = None
    if "@" in rest:
        userinfo, _, rest = rest.rpartition("@")
    cut = min((i for i in (rest.find("?"), rest.find("#")) if i >= 0), default=len(rest))
    return scheme, userinfo, rest[:cut], rest[cut:]


def _redact_options_text(options: str) -> str:
    # A "?" or "#" inside a value is part of the value: only "&" and ";" separate options.
    pieces = _OPTION_SEPARATORS.split(options[1:])
    for index, piece in enumerate(pieces):
        name, equals, value = piece.partition("=")
        if equals and (is_secret_name(name) or _is_secret_value(value)):
            pieces[index] = f"{name}={REDACTED}"
        elif not equals and piece and _is_secret_value(piece):
            pieces[index] = REDACTED
    return options[:1] + "".join(pieces)


def redact_url(url: str) -> str:
    """Return ``url`` with its password and secret query options replaced by ``***``.

    Works for ``redis://``, ``rediss://``, ``unix://``, ``mongodb://``, ``mongodb+srv://``,
    ``postgresql://`` and any other ``scheme://`` URL, with several hosts, and with
    passwords holding unescaped ``/ ? # @ :``. The host, port, path (database) and the
    other options stay visible. Text without ``://`` is redacted as free text.
    """
    parts = _split(url)
    if parts is None:
        return redact_text(url)
    scheme, userinfo, location, options = parts
    shown = scheme
    if userinfo is not None and _OPTION_IN_USERINFO.search(userinfo):
        # The last "@" may sit in an option's value: what follows it may be a secret's end.
        return shown + REDACTED
    if userinfo is not None:
        user, has_password, _ = userinfo.partition(":")
        shown += f"{user}:{REDACTED}@" if has_password else f"{userinfo}@"
    return shown + location + _redact_options_text(options)


def url_secrets(url: str) -> tuple[str, ...]:
    """The secret strings ``url`` holds (as written and percent-decoded), for scrubbing.

    These are what :func:`redact_url` hides: the password of the user-info and the values
    of secret query options.
    """
    parts = _split(url)
    if parts is None:
        return ()
    scheme, userinfo, _, options = parts
    found: list[str] = []
    # An "@" in an option makes the user-info's end ambiguous: every "@" may end it.
    rest = url[len(scheme) :]
    ends = [i for i, c in enumerate(rest) if c == "@"] if userinfo is not None else []
    for end in ends:
        password = rest[:end].partition(":")[2]
        found += [password, unquote(password)]
    for piece in _OPTION_SEPARATORS.split(f"{options[1:]}&{rest.partition('?')[2]}"):
        name, equals, value = piece.partition("=")
        if equals and (is_secret_name(name) or _is_secret_value(value)):
            found += [value, unquote(value)]
    return tuple(dict.fromkeys(s for s in found if s))


def redact_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of backend options safe to print.

    Secret options (:func:`is_secret_name`) are replaced by ``***``; strings holding
    ``://`` (URLs, DSNs) go through :func:`redact_url`; nested mappings, lists and tuples
    are redacted in the same way.
    """
    return {name: _redact_option(name, value) for name, value in options.items()}


def _redact_option(name: str, value: Any) -> Any:
    if is_secret_name(name):
        return REDACTED
    if isinstance(value, str):
        if "://" in value or name.lower().endswith(_URL_NAMES):
            return redact_url(value)
        return value
    if isinstance(value, Mapping):
        return {str(k): _redact_option(str(k), v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_redact_option(name, item) for item in value)
    return value


def redact_text(text: str, secrets: Iterable[str] = ()) -> str:
    """Redact passwords in free text, such as a driver's error message.

    URLs are redacted as :func:`redact_url` does (a URL in free text ends at the first white
    space), ``password=...`` and ``token: ...`` pairs lose their values, and every string of
    ``secrets`` (for example :func:`url_secrets` of the configured URL) is replaced.
    """
    for secret in sorted(set(secrets), key=len, reverse=True):
        if secret:
            text = text.replace(secret, REDACTED)
    text = _URL_IN_TEXT.sub(lambda m: redact_url(m.group()), text)
    return _KV_SECRET.sub(lambda m: f"{m[1]}{m[2]}{REDACTED}", text)


def userinfo_problem(url: str) -> str | None:
    """Why drivers would misread the user-info of ``url``, or ``None`` when it is fine.

    A password holding an unescaped ``/``, ``?`` or ``#`` ends the host part early for
    every URL parser (redis-py, PyMongo and asyncpg included): the driver would connect to
    the wrong host with a piece of the password. The message never quotes the password.
    """
    parts = _split(url)
    if parts is None or parts[1] is None:
        return None
    if _OPTION_IN_USERINFO.search(parts[1]) and _plausible_hosts(parts[0], url):
        return None  # the last "@" is taken to be in an option's value
    found = [c for c in "/?#" if c in parts[1]]
    if not found:
        return None
    listed = " and ".join(repr(c) for c in found)
    return (
        f"the user name or password in the URL holds an unescaped {listed}: "
        "percent-encode it ('/' is %2F, '?' is %3F, '#' is %23)"
    )


def _plausible_hosts(scheme: str, url: str) -> bool:
    """Whether the hosts a URL parser sees (up to the first ``/?#``) look like hosts.

    ``redis://:pa?s=s@host`` parses as host ``""`` and port ``pa``: not plausible, so the
    ``@`` ends a user-info. ``mongodb://h:27017/db?appName=me@corp`` parses as ``h:27017``.
    """
    authority = re.split(r"[/?#]", url[len(scheme) :], maxsplit=1)[0]
    if ":" not in authority:
        return True
    for host_port in authority.split(","):
        host, colon, port = host_port.rpartition(":")
        if host_port.endswith("]") or not colon:
            host, port = host_port, ""
        if not host or (colon and not port.isdigit()):
            return False
    return True
