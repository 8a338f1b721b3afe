"""Checking a MongoDB URI the way PyMongo reads it, before anything connects."""

from __future__ import annotations

from urllib.parse import parse_qsl, unquote

from pymongo import uri_parser, uri_parser_shared
from pymongo.errors import ConfigurationError as PyMongoConfigurationError

from polystore.redact import REDACTED

__all__ = ["scrub_uri_message", "uri_problem"]

_SECRET_OPTION_WORDS = ("password", "token", "secret", "key", "properties")


def uri_problem(uri: str) -> str | None:
    """What PyMongo finds wrong in ``uri`` (hosts, ports, user-info, options), or ``None``.

    Checked without any I/O: a ``mongodb+srv://`` URI is not resolved. The answer never
    quotes the password or a secret option of the URI.
    """
    try:
        if uri.startswith("mongodb+srv://"):
            # PyMongo's own check of an SRV URI without the DNS lookup; when a PyMongo
            # release lacks it, the URI is checked when the client is created.
            check = getattr(uri_parser_shared, "_validate_uri", None)
            if check is not None:
                check(uri, warn=False)
        else:
            uri_parser.parse_uri(uri, warn=False)
    except (ValueError, TypeError, PyMongoConfigurationError) as exc:
        return scrub_uri_message(str(exc), uri)
    return None


def scrub_uri_message(message: str, uri: str) -> str:
    """``message`` with the password and the secret option values of ``uri`` replaced."""
    _, _, rest = uri.partition("://")
    userinfo, _, hosts = rest.rpartition("@")  # a password may hold "/", "?" or "#"
    options = hosts.partition("?")[2]
    secrets = [userinfo.partition(":")[2]] if ":" in userinfo else []
    for name, value in parse_qsl(options, keep_blank_values=True):
        if any(word in name.lower() for word in _SECRET_OPTION_WORDS):
            secrets.append(value)
    variants = {variant for secret in secrets for variant in (secret, unquote(secret)) if variant}
    for secret in sorted(variants, key=len, reverse=True):
        message = message.replace(secret, REDACTED)
    return message
