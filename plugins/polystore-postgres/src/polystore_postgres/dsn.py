"""Checking a PostgreSQL URL the way asyncpg reads it, before anything connects.

asyncpg finds a bad scheme, port or ``sslmode`` only when it connects, and reports a port
out of range as a raw ``OverflowError``; here they are refused up front with a message
that names the problem and never quotes the password.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, urlsplit

__all__ = ["SCHEMES", "SSL_MODES", "dsn_problem"]

SCHEMES = ("postgresql", "postgres")
"""The URL schemes asyncpg accepts."""

SSL_MODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
"""The values of ``sslmode`` (libpq's)."""

_MAX_PORT = 65535


def _port_problem(port: str) -> str | None:
    if not port.isdigit() or not 0 < int(port) <= _MAX_PORT:
        return f"port {port!r} is not a number from 1 to {_MAX_PORT}"
    return None


def _host_problem(host: str) -> str | None:
    """``host``, ``host:port``, ``[v6]`` or ``[v6]:port`` (one entry of a host list)."""
    if host.startswith("["):
        address, bracket, rest = host[1:].partition("]")
        if not bracket or not address:
            return "an IPv6 address must be written in brackets: [::1]:5432"
        if rest and not rest.startswith(":"):
            return "an IPv6 address in brackets may only be followed by :port"
        port = rest[1:] if rest else ""
    else:
        port = host.rpartition(":")[2] if ":" in host else ""
    return _port_problem(port) if port else None


def dsn_problem(url: str) -> str | None:
    """What is wrong with ``url``'s scheme, hosts, ports or ``sslmode``, or ``None``."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.lower() not in SCHEMES:
        return "url must start with postgresql:// or postgres://"
    hosts = rest.rpartition("@")[2]  # a password may hold "/", "?" or "#"
    hosts, _, query = hosts.partition("?")
    hosts = hosts.partition("/")[0]
    for host in hosts.split(",") if hosts else ():
        problem = _host_problem(host)
        if problem is not None:
            return problem
    try:
        options = parse_qsl(urlsplit(f"x://h?{query}").query, keep_blank_values=True)
    except ValueError:
        return "the query string does not parse"
    for name, value in options:
        if name == "sslmode" and value not in SSL_MODES:
            return f"sslmode must be one of {', '.join(SSL_MODES)}, got {value!r}"
        if name == "port":
            for port in value.split(","):
                problem = _port_problem(port)
                if problem is not None:
                    return problem
    return None
