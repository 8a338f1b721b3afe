"""Input checks that every store runs before any I/O."""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from polystore.errors import ValidationError
from polystore.types import Scalar

__all__ = [
    "MAX_KEY_BYTES",
    "MAX_TTL_SECONDS",
    "matches_where",
    "scalar_equal",
    "validate_batch_size",
    "validate_key",
    "validate_keys",
    "validate_limit",
    "validate_prefix",
    "validate_ttl",
    "validate_where",
]

MAX_KEY_BYTES = 1024
"""Longest key accepted, in UTF-8 bytes."""

MAX_TTL_SECONDS = 100 * 365 * 24 * 3600.0
"""Longest ttl accepted (one hundred years)."""


def validate_key(key: object, *, what: str = "key") -> str:
    """Check that ``key`` is a non-empty str of at most 1024 UTF-8 bytes without NUL.

    Raises:
        ValidationError: The key is not acceptable.
    """
    if type(key) is str and key and key.isascii() and len(key) <= MAX_KEY_BYTES:
        if "\x00" in key:
            raise ValidationError(f"{what} must not contain NUL characters", key=key)
        return key
    if not isinstance(key, str):
        raise ValidationError(f"{what} must be str, not {type(key).__name__}")
    if not key:
        raise ValidationError(f"{what} must not be empty")
    _check_text(key, what)
    return key


def validate_keys(keys: list[str], *, what: str = "key") -> None:
    """Check every key of a batch, as :func:`validate_key` does.

    The common batch (short ASCII keys) is checked with a handful of C-level passes over
    all keys at once; anything else is checked key by key, for the precise error.

    Raises:
        ValidationError: A key is not acceptable.
    """
    try:
        joined = "".join(keys)
    except TypeError:
        joined = None
    if (
        joined is not None
        and joined.isascii()
        and "\x00" not in joined
        and min(map(len, keys), default=1) > 0
        and max(map(len, keys), default=0) <= MAX_KEY_BYTES
    ):
        return
    for key in keys:
        validate_key(key, what=what)


def validate_prefix(prefix: object) -> str:
    """Check a ``scan`` prefix: like a key, but it may be empty."""
    if not isinstance(prefix, str):
        raise ValidationError(f"prefix must be str, not {type(prefix).__name__}")
    if prefix:
        _check_text(prefix, "prefix")
    return prefix


def _check_text(text: str, what: str) -> None:
    if "\x00" in text:
        raise ValidationError(f"{what} must not contain NUL characters", key=text)
    try:
        size = len(text.encode("utf-8"))
    except UnicodeEncodeError as exc:
        raise ValidationError(f"{what} is not valid Unicode (lone surrogate)") from exc
    if size > MAX_KEY_BYTES:
        raise ValidationError(
            f"{what} is {size} UTF-8 bytes; the limit is {MAX_KEY_BYTES}", key=text
        )


def validate_ttl(ttl: object) -> float | None:
    """Check a ttl: ``None``, or seconds or a :class:`~datetime.timedelta` that is finite,
    > 0 and at most 100 years. Returns the seconds.

    Raises:
        ValidationError: The ttl is not acceptable.
    """
    if ttl is None:
        return None
    if isinstance(ttl, timedelta):
        ttl = ttl.total_seconds()
    elif isinstance(ttl, bool) or not isinstance(ttl, (int, float)):
        raise ValidationError(
            f"ttl must be a number of seconds or a timedelta, not {type(ttl).__name__}"
        )
    if not math.isfinite(ttl) or ttl <= 0:
        raise ValidationError(f"ttl must be a finite number of seconds > 0, got {ttl!r}")
    if ttl > MAX_TTL_SECONDS:
        raise ValidationError(f"ttl {ttl!r} exceeds the limit of {MAX_TTL_SECONDS:.0f} seconds")
    return float(ttl)


def validate_batch_size(batch_size: object) -> int:
    """Check a scan batch size: an int between 1 and 10 000."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int):
        raise ValidationError("batch_size must be an int")
    if not 1 <= batch_size <= 10_000:
        raise ValidationError(f"batch_size must be between 1 and 10000, got {batch_size}")
    return batch_size


def validate_limit(limit: object) -> int | None:
    """Check a ``find`` limit: ``None`` or an int >= 1."""
    if limit is None:
        return None
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ValidationError(f"limit must be None or an int >= 1, got {limit!r}")
    return limit


def validate_where(where: object) -> dict[str, Scalar]:
    """Check a ``find`` filter: top-level field names mapped to scalar values.

    Field names must be non-empty, must not start with ``$`` and must not contain ``.``
    or NUL; values must be ``None``, bool, int, finite float or str. Anything shaped like
    an operator (``{"$ne": None}``) is rejected.

    Raises:
        ValidationError: The filter is not acceptable.
    """
    if not isinstance(where, Mapping):
        raise ValidationError(f"where must be a mapping, not {type(where).__name__}")
    checked: dict[str, Scalar] = {}
    for field, value in where.items():
        _check_field_name(field)
        checked[field] = _check_scalar(field, value)
    return checked


def _check_field_name(field: object) -> None:
    if not isinstance(field, str) or not field:
        raise ValidationError(f"filter field names must be non-empty str, got {field!r}")
    if field.startswith("$") or "." in field or "\x00" in field:
        raise ValidationError(
            f"filter field {field!r} must not start with '$' or contain '.' or NUL"
        )


def _check_scalar(field: str, value: Any) -> Scalar:
    if value is None or isinstance(value, (bool, str, int)):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValidationError(f"filter value for {field!r} must be a finite number")
        return value
    raise ValidationError(
        f"filter value for {field!r} must be a scalar (None, bool, int, float, str), "
        f"not {type(value).__name__}"
    )


def matches_where(value: object, where: Mapping[str, Scalar]) -> bool:
    """Whether a stored value satisfies an equality filter.

    Semantics shared by every backend: the value must be an object holding each field;
    ``None`` matches only an explicit null; booleans match only booleans; numbers
    compare numerically (``1 == 1.0``); strings compare exactly.
    """
    if not isinstance(value, dict):
        return False
    for field, expected in where.items():
        if field not in value:
            return False
        if not scalar_equal(value[field], expected):
            return False
    return True


def scalar_equal(actual: object, expected: Scalar) -> bool:
    """JSON equality of one stored field and one filter value (see :func:`matches_where`)."""
    if expected is None:
        return actual is None
    if isinstance(expected, bool) or isinstance(actual, bool):
        return type(actual) is type(expected) and actual == expected
    if isinstance(expected, (int, float)):
        return isinstance(actual, (int, float)) and actual == expected
    return isinstance(actual, str) and actual == expected
