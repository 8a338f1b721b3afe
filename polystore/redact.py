"""Redaction of secrets in URLs and DSNs, for reprs, logs and error messages."""

from __future__ import annotations

import re
from urllib.parse import SplitResult, parse_qsl, urlencode, urlsplit, urlunsplit

__all__ = ["REDACTED", "redact_text", "redact_url"]

REDACTED = "***"

_SECRET_PARAMS = frozenset(
    {
        "password",
        "pass",
        "pwd",
        "secret",
        "token",
        "access_token",
        "sslpassword",
        "authsource_password",
    }
)
_USERINFO = re.compile(
    r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.\-]*://)(?P<user>[^:@/\s]*):(?P<pw>[^@/\s]*)@"
)
_KV_SECRET = re.compile(r"(?i)\b(password|pwd|secret|token)\s*=\s*('[^']*'|\"[^\"]*\"|[^\s&;]+)")


def redact_url(url: str) -> str:
    """Return ``url`` with its password and secret query parameters replaced by ``***``.

    Works for ``redis://``, ``rediss://``, ``mongodb://``, ``mongodb+srv://``,
    ``postgresql://`` and similar URLs, including several hosts. Anything that does not
    parse is redacted by pattern.
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        return redact_text(url)
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, hosts = netloc.rpartition("@")
        user, has_password, _ = userinfo.partition(":")
        netloc = f"{user}:{REDACTED}@{hosts}" if has_password else f"{userinfo}@{hosts}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(name.lower() in _SECRET_PARAMS for name, _ in pairs):
            query = urlencode(
                [(n, REDACTED if n.lower() in _SECRET_PARAMS else v) for n, v in pairs],
                safe="*",
            )
    if "://" in url:
        result = f"{parts.scheme}://{netloc}{parts.path}"
        if query:
            result += f"?{query}"
        if parts.fragment:
            result += f"#{parts.fragment}"
        return result
    return urlunsplit(SplitResult(parts.scheme, netloc, parts.path, query, parts.fragment))


def redact_text(text: str) -> str:
    """Redact passwords in free text: URL user-info and ``password=...`` pairs."""
    text = _USERINFO.sub(lambda m: f"{m['scheme']}{m['user']}:{REDACTED}@", text)
    return _KV_SECRET.sub(lambda m: f"{m[1]}={REDACTED}", text)
