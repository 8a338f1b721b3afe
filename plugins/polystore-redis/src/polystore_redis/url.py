"""Checking a Redis URL the way redis-py reads it, before anything connects.

redis-py quietly ignores a database path that is not a number (``redis://h/cache`` uses
database 0) and only fails on a bad port when the client is built; both are refused here
with a message that names the problem and never quotes the password.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qsl, unquote, urlsplit

__all__ = ["SentinelTarget", "sentinel_target", "url_problem"]

_MAX_PORT = 65535


@dataclass(frozen=True)
class SentinelTarget:
    """What a ``redis+sentinel://`` URL names.

    Attributes:
        sentinels: ``(host, port)`` of each Sentinel (port 26379 when omitted).
        service: The monitored primary's name (``sentinel monitor <service> ...``).
        db: The database number.
        username: ACL user of the data servers, if any.
        password: Password of the data servers, if any.
    """

    sentinels: tuple[tuple[str, int], ...]
    service: str
    db: int
    username: str | None
    password: str | None


def sentinel_target(url: str) -> SentinelTarget | str:
    """Read ``redis+sentinel://[[user]:password@]host[:port][,host[:port]...]/service[/db]``:
    the target, or what is wrong with the URL (never quoting the password)."""
    rest = url.partition("://")[2]
    userinfo, _, rest = rest.rpartition("@")
    hosts, _, path = rest.partition("/")
    path, _, query = path.partition("?")
    if query:
        return "a redis+sentinel:// URL takes no query options"
    sentinels: list[tuple[str, int]] = []
    for host in hosts.split(","):
        name, colon, port = host.rpartition(":") if ":" in host else (host, "", "")
        if not name:
            return "each Sentinel needs a host (redis+sentinel://host:26379,host2:26379/service)"
        if colon and (not port.isdigit() or not 0 < int(port) <= _MAX_PORT):
            return f"the port is not a number from 1 to {_MAX_PORT}"
        sentinels.append((name, int(port) if colon else 26379))
    service, _, db = path.partition("/")
    if not service:
        return (
            "a redis+sentinel:// URL needs the service name: redis+sentinel://host:26379/mymaster"
        )
    if db and not db.isdigit():
        return f"the database must be a number (…/service/0), got {db!r}"
    user, has_password, password = userinfo.partition(":")
    return SentinelTarget(
        tuple(sentinels),
        unquote(service),
        int(db or 0),
        unquote(user) or None,
        unquote(password) if has_password else None,
    )


def url_problem(url: str) -> str | None:
    """What is wrong with ``url``'s port, database or socket path, or ``None``.

    The scheme is checked by the settings model before this.
    """
    if url.lower().startswith("redis+sentinel://"):
        target = sentinel_target(url)
        return target if isinstance(target, str) else None
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
