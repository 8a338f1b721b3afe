"""SQL identifiers: an allow-list pattern, quoting, and the namespace-to-table mapping.

Namespaces may hold ``. : / -`` and capitals, which SQL identifiers should not, so each
namespace maps deterministically to ``kv_<sanitised>_<hash>``: the sanitised part keeps
the table recognisable in ``psql``; the hash (of the exact namespace) keeps namespaces
that sanitise alike (``a.b`` and ``a-b``, ``A`` and ``a``) apart.
"""

from __future__ import annotations

import hashlib
import re

from polystore import ConfigurationError

__all__ = [
    "IDENTIFIER",
    "advisory_lock_key",
    "check_identifier",
    "quote_identifier",
    "table_for_namespace",
]

IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
"""What an identifier polystore creates or accepts must look like."""

_RESERVED = frozenset({"information_schema"})
_SANITISE = re.compile(r"[^a-z0-9_]+")
_READABLE_PART = 36
_HASH_HEX = 12


def check_identifier(name: str, *, what: str = "identifier") -> str:
    """Return ``name`` if it matches :data:`IDENTIFIER` and is not a system name.

    Raises:
        ConfigurationError: It does not.
    """
    if not isinstance(name, str) or not IDENTIFIER.fullmatch(name):
        raise ConfigurationError(
            f"{what} {name!r} must match {IDENTIFIER.pattern} "
            "(lower-case letters, digits and _, at most 63 characters)"
        )
    if name in _RESERVED or name.startswith("pg_"):
        raise ConfigurationError(f"{what} {name!r} is reserved by PostgreSQL")
    return name


def quote_identifier(name: str) -> str:
    """Double-quote an identifier that already passed :func:`check_identifier`."""
    check_identifier(name)
    return f'"{name}"'


def table_for_namespace(namespace: str) -> str:
    """The table name of a (validated) namespace, e.g. ``cache/sessions`` ->
    ``kv_cache_sessions_1f2e3d4c5b6a``.

    At most 52 characters, so index names built from it stay within 63.
    """
    readable = _SANITISE.sub("_", namespace.lower()).strip("_")[:_READABLE_PART]
    digest = hashlib.sha256(namespace.encode("utf-8")).hexdigest()[:_HASH_HEX]
    name = f"kv_{readable}_{digest}" if readable else f"kv_{digest}"
    return check_identifier(name, what="table name")


def advisory_lock_key(scope: str) -> int:
    """A stable signed 64-bit key for PostgreSQL advisory locks guarding work on ``scope``
    (a schema name for DDL, ``schema.table:doc`` for an index build)."""
    digest = hashlib.sha256(f"polystore-postgres:{scope}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)
