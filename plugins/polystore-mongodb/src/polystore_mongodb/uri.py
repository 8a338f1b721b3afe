"""Checking a MongoDB URI the way PyMongo reads it, before anything connects."""

from __future__ import annotations

from pymongo import uri_parser, uri_parser_shared
from pymongo.errors import ConfigurationError as PyMongoConfigurationError

from polystore.spi import redact_text, url_secrets

__all__ = ["scrub_uri_message", "uri_problem"]


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
    """``message`` with the password and the secret option values of ``uri`` replaced.

    The core's rule (:func:`polystore.redact.url_secrets`), shared by every plugin.
    """
    return redact_text(message, url_secrets(uri))
