"""Single-key statements shared by the store and its transactions, on a given connection."""

from __future__ import annotations

from typing import Any

import orjson

from polystore import AlreadyExistsError, ConflictError
from polystore.spi import Entry, Scalar, Version, new_version
from polystore_postgres.sql import TableSQL

__all__ = [
    "containment_filter",
    "holds_nul",
    "prefix_upper_bound",
    "read_entry",
    "remove",
    "write",
]

_EXACT_NUMBERS = 2**53
"""Beyond this, a JSON number's text and its double part ways: ``find`` checks in Python."""


def holds_nul(data: bytes) -> bool:
    """Whether encoded JSON holds ``\\u0000`` (how the codec writes NUL), which jsonb
    cannot store: such an object is left out of the ``find`` index and checked in Python.
    A literal backslash-u0000 in a string also answers yes, at the same small cost."""
    # Most documents hold no backslash at all, and looking for one byte is several times
    # faster than looking for six.
    return b"\\" in data and b"\\u0000" in data


def containment_filter(where: dict[str, Scalar]) -> str:
    """The jsonb document for ``value::jsonb @> $1``: the filter's fields that jsonb
    compares exactly as :func:`polystore.validation.matches_where` does.

    Fields left out (strings with NUL, numbers of magnitude 2**53 or more) are checked
    only by the exact post-filter, so the SQL result is always a superset.
    """
    pushed: dict[str, Scalar] = {}
    for field, value in where.items():
        if isinstance(value, str):
            exact = "\x00" not in value
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            exact = abs(value) < _EXACT_NUMBERS
        else:
            exact = True
        if exact:
            pushed[field] = value
    return orjson.dumps(pushed).decode()


def prefix_upper_bound(prefix: str) -> str | None:
    """The least string above every string starting with ``prefix`` (code-point order),
    or ``None`` when there is none (empty prefix, or only U+10FFFF characters)."""
    chars = list(prefix)
    while chars:
        code = ord(chars.pop()) + 1
        if code <= 0x10FFFF:
            if 0xD800 <= code <= 0xDFFF:  # surrogates cannot be encoded; skip them
                code = 0xE000
            return "".join(chars) + chr(code)
    return None


async def write(
    conn: Any,
    sql: TableSQL,
    store_name: str,
    key: str,
    data: bytes,
    ttl: float | None,
    if_version: Version | None,
    if_absent: bool,
    timeout: float,
) -> Version:
    """One plain, compare-and-set or create-only write: one statement, one round trip.

    Raises:
        ConflictError: ``if_version`` did not match a live entry.
        AlreadyExistsError: ``if_absent`` and a live entry exists.
    """
    version = new_version()
    text = data.decode("utf-8")
    nul = holds_nul(data)
    if if_version is not None:
        done = await conn.fetchval(
            sql.update_if_version, key, text, version, ttl, nul, if_version, timeout=timeout
        )
        if done is None:
            raise ConflictError("version mismatch", backend=store_name, operation="save", key=key)
    elif if_absent:
        done = await conn.fetchval(
            sql.insert_if_absent, key, text, version, ttl, nul, timeout=timeout
        )
        if done is None:
            raise AlreadyExistsError(
                "key already exists", backend=store_name, operation="save", key=key
            )
    else:
        await conn.execute(sql.upsert, key, text, version, ttl, nul, timeout=timeout)
    return version


async def remove(
    conn: Any,
    sql: TableSQL,
    store_name: str,
    key: str,
    if_version: Version | None,
    timeout: float,
) -> bool:
    """Delete one key; return whether a live entry existed.

    Raises:
        ConflictError: ``if_version`` did not match a live entry.
    """
    if if_version is not None:
        done = await conn.fetchval(sql.delete_if_version, key, if_version, timeout=timeout)
        if done is None:
            raise ConflictError("version mismatch", backend=store_name, operation="delete", key=key)
        return True
    live = await conn.fetchval(sql.delete, key, timeout=timeout)
    return live is True


async def read_entry(conn: Any, sql: TableSQL, key: str, timeout: float) -> Entry | None:
    """The live entry of ``key``, or ``None``."""
    row = await conn.fetchrow(sql.get_entry, key, timeout=timeout)
    if row is None:
        return None
    return Entry(key, orjson.loads(row[0]), Version(row[1]), row[2])
