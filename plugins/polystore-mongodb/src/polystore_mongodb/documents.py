"""How entries are laid out as MongoDB documents, and the filters that read them.

One document per key::

    {"_id": key, "v": <the JSON value>, "ver": <version token>,
     "exp": <UTC datetime, absent without ttl>,
     "esc": true,   # only when keys were escaped
     "i64": true}   # only when the value holds integers beyond 32 bits

The user's value sits under ``v``, so no field of it can collide with the bookkeeping
fields. Object keys inside the value that MongoDB cannot hold or address (a leading
``$``, a ``.``, NUL) are escaped reversibly: such a key becomes ``%`` followed by the key
with ``%``, ``.``, ``$`` and NUL percent-encoded, and a key that itself starts with ``%`` is
escaped the same way so the mapping stays one-to-one. Documents with escaped keys carry
``esc: true``; reads of all other documents skip the unescaping walk.

BSON stores integers beyond 32 bits as int64, which PyMongo decodes as ``bson.Int64`` (an
``int`` subclass that JSON encoders refuse); documents holding one carry ``i64: true`` and
their value is converted back to plain ``int`` on read. The flag keeps that walk, and a
decoder hook that would slow down every read, off the common path.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from typing import Any

from polystore.spi import JsonCodec, JSONValue, Scalar

__all__ = [
    "ESCAPED",
    "EXPIRES",
    "VALUE",
    "VERSION",
    "WIDE_INTS",
    "escape_key",
    "escape_value",
    "expired_filter",
    "find_filter",
    "has_wide_ints",
    "is_live",
    "key_range",
    "live_filter",
    "make_document",
    "needs_escape",
    "plain_ints",
    "prefix_successor",
    "read_value",
    "unescape_key",
    "unescape_value",
    "utcnow",
]

VALUE = "v"
VERSION = "ver"
EXPIRES = "exp"
ESCAPED = "esc"
WIDE_INTS = "i64"

_MARK = "%"
_UNESCAPES = {"25": "%", "2E": ".", "24": "$", "00": "\x00"}
_ESCAPED_SEQUENCE = re.compile("%(25|2E|24|00)")
_MAX_CODE_POINT = 0x10FFFF
_SURROGATES = range(0xD800, 0xE000)
_NOT_ARRAY = {"$not": {"$type": "array"}}
_TEN_DIGITS = re.compile(rb"[0-9]{10}")  # every integer beyond 32 bits has 10 digits or more
_INT32 = range(-(2**31), 2**31)
_INT64 = range(-(2**63), 2**63)
_JSON = JsonCodec()


def utcnow() -> datetime:
    """The current time as an aware UTC datetime."""
    return datetime.now(timezone.utc)


# -- escaping ---------------------------------------------------------------------------


def _key_needs_escape(key: str) -> bool:
    return key[:1] in ("$", _MARK) or "." in key or "\x00" in key


def escape_key(key: str) -> str:
    """The stored form of one object key (unchanged unless it needs escaping)."""
    if not _key_needs_escape(key):
        return key
    body = key.replace("%", "%25").replace(".", "%2E").replace("$", "%24").replace("\x00", "%00")
    return _MARK + body


def unescape_key(key: str) -> str:
    """The inverse of :func:`escape_key`."""
    if not key.startswith(_MARK):
        return key
    return _ESCAPED_SEQUENCE.sub(lambda match: _UNESCAPES[match[1]], key[1:])


def needs_escape(value: object) -> bool:
    """Whether any object key anywhere in ``value`` needs escaping."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            for key, child in item.items():
                if _key_needs_escape(key):
                    return True
                if isinstance(child, (dict, list)):
                    stack.append(child)
        elif isinstance(item, list):
            stack.extend(child for child in item if isinstance(child, (dict, list)))
    return False


def escape_value(value: Any) -> Any:
    """A copy of ``value`` with every object key escaped."""
    if isinstance(value, dict):
        return {escape_key(key): escape_value(child) for key, child in value.items()}
    if isinstance(value, list):
        return [escape_value(child) for child in value]
    return value


def unescape_value(value: Any) -> Any:
    """The inverse of :func:`escape_value` (returns a copy)."""
    if isinstance(value, dict):
        return {unescape_key(key): unescape_value(child) for key, child in value.items()}
    if isinstance(value, list):
        return [unescape_value(child) for child in value]
    return value


def has_wide_ints(value: object) -> bool:
    """Whether ``value`` holds an integer that BSON stores as int64."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif type(item) is int and item not in _INT32:
            return True
    return False


def plain_ints(value: Any) -> Any:
    """A copy of ``value`` with every ``int`` subclass (``bson.Int64``) made a plain ``int``."""
    if isinstance(value, dict):
        return {key: plain_ints(child) for key, child in value.items()}
    if isinstance(value, list):
        return [plain_ints(child) for child in value]
    if isinstance(value, int) and type(value) is not int and type(value) is not bool:
        return int(value)
    return value


def _might_need_escape(data: bytes) -> bool:
    """Whether the compact JSON ``data`` may hold an object key that needs escaping.

    A key needing escape holds ``.``, ``$``, ``%`` or an escaped NUL, and the first ``"``
    after that character closes the key, so ``:`` follows it. The same character in a
    value string is followed by a quote and then ``,``, ``}`` or ``]``; in a number, by
    the opening quote of a key or nothing. An escaped quote (a backslash before it)
    answers yes: the walk that follows decides exactly. Each character is looked for
    with ``bytes.find`` (``memchr``), far faster than a regular expression with choices.
    """
    find = data.find
    needles = (b".", b"$", b"%", b"\\u0000") if b"\\" in data else (b".", b"$", b"%")
    for needle in needles:
        at = find(needle)
        while at >= 0:
            quote = find(b'"', at + 1)
            if quote < 0:
                break  # no string follows: no key either
            if data[quote - 1] == 0x5C or data[quote + 1 : quote + 2] == b":":
                return True
            at = find(needle, quote)
    return False


# -- documents --------------------------------------------------------------------------


def make_document(
    value: JSONValue, data: bytes, version: str, ttl: float | None, now: datetime | None = None
) -> dict[str, Any]:
    """The replacement document of one entry (without ``_id``).

    Args:
        value: The JSON value.
        data: Its JSON encoding (used to skip the escaping walk for most values).
        version: The new version token.
        ttl: Seconds until expiry, or ``None``.
        now: The time the ttl counts from; the current time when omitted.
    """
    document: dict[str, Any]
    if not JsonCodec.is_plain(value):
        # A mapping or sequence of another type, or a number subclass: store the JSON
        # form, as every other backend does (BSON would refuse a UserList, a range, ...).
        value = _JSON.decode(data)
    if _might_need_escape(data) and needs_escape(value):
        document = {VALUE: escape_value(value), VERSION: version, ESCAPED: True}
    else:
        document = {VALUE: value, VERSION: version}
    if _TEN_DIGITS.search(data) and has_wide_ints(value):
        document[WIDE_INTS] = True
    if ttl is not None:
        document[EXPIRES] = (now or utcnow()) + timedelta(seconds=ttl)
    return document


def read_value(document: dict[str, Any]) -> JSONValue:
    """The user's value of a stored document."""
    value = document.get(VALUE)
    if document.get(WIDE_INTS):
        value = plain_ints(value)
    if document.get(ESCAPED):
        return unescape_value(value)  # type: ignore[no-any-return]
    return value


def is_live(document: dict[str, Any]) -> bool:
    """Whether a fetched document has not expired (checked on the client's clock)."""
    expires = document.get(EXPIRES)
    return expires is None or expires > utcnow()


# -- filters ----------------------------------------------------------------------------


def live_filter(now: datetime) -> dict[str, Any]:
    """Matches documents without expiry or expiring after ``now``."""
    return {EXPIRES: {"$not": {"$lte": now}}}


def expired_filter(now: datetime) -> dict[str, Any]:
    """Matches documents that expired at or before ``now``."""
    return {EXPIRES: {"$lte": now}}


def prefix_successor(prefix: str) -> str | None:
    """The smallest string greater than every string starting with ``prefix``.

    MongoDB compares strings (without a collation) by their UTF-8 bytes, which is
    code-point order. ``None`` when there is no such string (empty prefix, or one made
    only of U+10FFFF).
    """
    chars = list(prefix)
    while chars:
        code = ord(chars.pop()) + 1
        if code <= _MAX_CODE_POINT:
            if code in _SURROGATES:
                code = _SURROGATES.stop
            return "".join(chars) + chr(code)
    return None


def key_range(prefix: str, after: str | None = None) -> dict[str, Any]:
    """An ``_id`` condition for keys starting with ``prefix`` (and greater than ``after``).

    A range on the ``_id`` index, never a pattern: no character of the prefix has a
    special meaning.
    """
    condition: dict[str, Any] = {"$gte": prefix} if after is None else {"$gt": after}
    upper = prefix_successor(prefix)
    if upper is not None:
        condition["$lt"] = upper
    return condition


def _exact_double(number: int) -> float | None:
    """The float equal to ``number``, or ``None`` if no float is."""
    try:
        as_float = float(number)
    except OverflowError:
        return None
    return as_float if as_float == number else None


def find_filter(where: dict[str, Scalar], now: datetime) -> dict[str, Any]:
    """The query for ``find``: equality on top-level fields of live object values.

    Follows the shared semantics: the value must be an object (arrays are excluded,
    which MongoDB would otherwise search element-wise); ``None`` matches only an explicit
    null (not a missing field); booleans match only booleans; numbers compare
    numerically; strings exactly.

    An integer beyond 64 bits (which BSON cannot carry, and no stored integer can equal)
    is compared as the double it equals exactly; one that no double equals matches nothing.
    """
    query: dict[str, Any] = {VALUE: _NOT_ARRAY}
    for field, expected in where.items():
        path = f"{VALUE}.{escape_key(field)}"
        if expected is None:
            query[path] = {"$type": "null", **_NOT_ARRAY}
        elif type(expected) is int and expected not in _INT64:
            equal = _exact_double(expected)
            if equal is None:
                return {"_id": {"$in": []}}
            query[path] = {"$eq": equal, **_NOT_ARRAY}
        else:
            query[path] = {"$eq": expected, **_NOT_ARRAY}
    query.update(live_filter(now))
    return query
