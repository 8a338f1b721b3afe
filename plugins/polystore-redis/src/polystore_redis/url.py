"""Checking a Redis URL the way redis-py reads it, before anything connects.

redis-py quietly ignores a database path that is not a number (``redis://h/cache`` uses
database 0) and only fails on a bad port when the client is built; both are refused here
with a message that names the problem and never quotes the password.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, urlsplit

__all__ = ["url_problem"]

_MAX_PORT = 65535


def url_problem(url: str) -> str | None:
    """What is wrong with ``url``'s port, database or socket path, or ``None``.

    The scheme is checked by the settings model before this.
    """
    try:
        parts = urlsplit(url)
    except ValueError as exc:  # e.g. "Invalid IPv6 URL"
        return f"the URL does not parse ({exc})"
    try:
        port = parts.port
    except ValueError as exc:  # "Port out of range", "Port could not be cast ..."
        return f"the port is not a number from 1 to {_MAX_PORT} ({exc})"
    if port == 0:
        return f"the port is not a number from 1 to {_MAX_PORT}"
    scheme = parts.scheme.lower()
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    if scheme == "unix":
        if not parts.path:
            return "a unix:// URL needs the socket's path (unix:///path/to/redis.sock)"
    else:
        database = parts.path.strip("/")
        if database and not database.isdigit():
            return f"the database must be a number (redis://host:port/0), got {database!r}"
    if "db" in query and not query["db"].isdigit():
        return f"the db option must be a number, got {query['db']!r}"
    return None
