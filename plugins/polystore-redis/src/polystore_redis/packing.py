"""Command packing with hiredis for redis-py's asyncio connections.

redis-py's synchronous connections pack commands with ``hiredis.pack_command`` when
hiredis is installed; its asyncio connections always pack in Python, which costs about
3 µs per ``GET`` and over 100 µs per 100-key ``MSET``. The connection classes here
pack with hiredis, producing the same bytes, and are used when hiredis is available.
"""

from __future__ import annotations

import importlib
from typing import Any

from redis import exceptions as rx
from redis.asyncio.connection import (
    AbstractConnection,
    Connection,
    SSLConnection,
    UnixDomainSocketConnection,
)

__all__ = ["HIREDIS_PACKING", "connection_class"]


def _load_pack_command() -> Any:
    try:
        hiredis = importlib.import_module("hiredis")
    except ImportError:
        return None
    return getattr(hiredis, "pack_command", None)


_pack_command = _load_pack_command()

HIREDIS_PACKING = _pack_command is not None
"""Whether hiredis (with ``pack_command``) is installed."""


class _HiredisPacking:
    """Mixin replacing ``pack_command`` by hiredis's (same output, in C)."""

    def pack_command(self, *args: Any) -> list[bytes]:
        command = args[0]
        # Like redis-py: a command name with spaces ("CONFIG GET") is several arguments.
        if isinstance(command, str):
            if " " in command:
                args = (*command.split(), *args[1:])
        elif b" " in command:
            args = (*command.split(), *args[1:])
        try:
            return [_pack_command(args)]
        except TypeError as exc:
            raise rx.DataError(str(exc)) from exc


class HiredisConnection(_HiredisPacking, Connection):
    """TCP connection packing with hiredis."""


class HiredisSSLConnection(_HiredisPacking, SSLConnection):
    """TLS connection packing with hiredis."""


class HiredisUnixConnection(_HiredisPacking, UnixDomainSocketConnection):
    """Unix-socket connection packing with hiredis."""


def connection_class(scheme: str) -> type[AbstractConnection] | None:
    """The hiredis-packing connection class for a URL scheme, or None without hiredis."""
    if not HIREDIS_PACKING:
        return None
    classes: dict[str, type[AbstractConnection]] = {
        "redis": HiredisConnection,
        "rediss": HiredisSSLConnection,
        "unix": HiredisUnixConnection,
    }
    return classes.get(scheme)
