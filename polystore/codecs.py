"""Codecs turn JSON values into bytes and back. JSON (orjson) is the one codec; no pickle.

Values are JSON by contract, and two backends store them as JSON themselves (PostgreSQL
``json`` columns, MongoDB documents that ``find`` filters on), so another encoding could not be
chosen per backend without losing ``find`` or the server-side types. There is therefore no
codec setting and no codec registry: a plugin whose server stores bytes passes
:class:`JsonCodec` (or its own :class:`Codec`) to ``BaseStore``, and an application
with other types stores them through a typed ``Collection`` (pydantic), which writes their
JSON form.

The JSON codec stores what :data:`~polystore.types.JSONInput` promises and refuses the
rest with :class:`~polystore.errors.SerializationError`, the same on every backend:

- ``None``, ``bool``, ``int`` (signed 64-bit), finite ``float``, ``str``;
- any ``Mapping`` with ``str`` keys (``dict``, ``OrderedDict``, ``defaultdict``,
  ``MappingProxyType``, ``UserDict``, ...) as a JSON object, read back as ``dict``;
- any ``Sequence`` other than text and bytes (``list``, ``tuple``, ``UserList``,
  ``range``, ...) as a JSON array, read back as ``list``;
- subclasses of ``int`` and ``float`` (a driver's ``Int64``, an ``IntEnum`` member) as
  the plain number, read back as ``int``/``float``.

Refused: ``uuid.UUID``, ``enum.Enum`` members that are not numbers (a plain ``Enum``, a
``StrEnum``), ``datetime``/``date``/``time``, ``Decimal``, ``bytes``, ``set``, ``str``
subclasses, NaN and infinities, integers beyond 64 bits, and any other object. orjson
would turn a UUID or an Enum into a string silently, and MongoDB refuses both: one
rule for every backend is to refuse them, as ``datetime`` always was. Typed collections
(pydantic models) store all of these in their JSON form.

Cost: orjson writes the bytes; one C-level pass (``gc.get_referents``, breadth first)
then confirms that every object reached is of an exact JSON type. Only a value that
fails it is walked in Python, to accept mappings, sequences and number subclasses and to
name the type refused.
"""

from __future__ import annotations

import enum
import gc
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

import orjson

from polystore.errors import SerializationError
from polystore.types import JSONInput, JSONValue

__all__ = ["Codec", "JsonCodec"]

_DUMPS_OPTIONS = (
    orjson.OPT_PASSTHROUGH_DATETIME
    | orjson.OPT_PASSTHROUGH_DATACLASS
    | orjson.OPT_PASSTHROUGH_SUBCLASS
)
_FIRST_TRY = _DUMPS_OPTIONS | orjson.OPT_STRICT_INTEGER
"""Integers within 53 bits, the common case; a value with a wider one is encoded again
with :data:`_DUMPS_OPTIONS` (orjson takes up to 64 bits unsigned) and its integers are
checked against signed 64 bits, which every backend can hold (BSON's int64)."""


@runtime_checkable
class Codec(Protocol):
    """Encodes JSON values to bytes and decodes them back.

    A codec may also define ``encode_many(values: list) -> list[bytes]``, encoding a batch
    with the same checks as ``encode``; stores use it for ``save_many`` when present.
    """

    name: str

    def encode(self, value: JSONInput) -> bytes:
        """Encode a value; raise :class:`SerializationError` if it is not representable."""
        ...

    def decode(self, data: bytes | str) -> JSONValue:
        """Decode bytes produced by :meth:`encode`."""
        ...


_find_null = re.compile(b"null").search
"""Where orjson wrote ``null`` (NaN and infinities come out so). ``re`` finds a literal
by ``memchr`` on its first byte: about three times faster than ``bytes.__contains__``
on JSON text, which is full of the letters of ``null``."""


_JSON_TYPES = frozenset({dict, list, tuple, str, int, float, bool, type(None)})
_TEXT_TYPES = (str, bytes, bytearray, memoryview)
_INT64 = range(-(2**63), 2**63)
_referents = gc.get_referents


def _all_plain(values: list[Any]) -> bool:
    """Whether every object reachable from ``values`` is of an exact JSON type.

    Breadth first, one level per step, each step in C: ``gc.get_referents`` of a dict
    gives its keys and values, of a list or tuple its items, of a str or number nothing.
    The caller has encoded the values already, so they hold no cycle.
    """
    level = values
    while level:
        if not _JSON_TYPES.issuperset(map(type, level)):
            return False
        level = _referents(*level)
    return True


def _convert(value: Any) -> Any:
    """orjson's ``default``: the JSON form of the inputs it does not take as they are."""
    if isinstance(value, enum.Enum) and not isinstance(value, (int, float)):
        raise TypeError(f"{type(value).__name__} (an Enum) is not a JSON value")
    # Number subclasses (a driver's Int64, an IntEnum) are stored as the plain number.
    if isinstance(value, int) and not isinstance(value, bool):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, Sequence) and not isinstance(value, _TEXT_TYPES):
        return list(value)
    raise TypeError(f"{type(value).__name__} is not a JSON value")


def _refused(value: object) -> str | None:
    """The first type in ``value`` the codec refuses although orjson took it, or ``None``."""
    stack = [value]
    while stack:
        item = stack.pop()
        kind = type(item)
        if kind is str or kind is bool or item is None:
            continue
        if isinstance(item, enum.Enum) and not isinstance(item, (int, float)):
            return f"{kind.__name__} (an Enum)"
        if isinstance(item, (int, float)):
            continue  # numbers, and number subclasses stored as the plain number
        if isinstance(item, Mapping):
            stack.extend(item.values())
        elif isinstance(item, Sequence) and not isinstance(item, _TEXT_TYPES):
            stack.extend(item)
        else:
            return kind.__name__  # UUID, orjson.Fragment, ...
    return None


def _out_of_range(value: object) -> bool:
    """Whether ``value`` holds a non-finite float or an integer beyond signed 64 bits."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, float):
            if not math.isfinite(item):
                return True
        elif isinstance(item, int):
            if item not in _INT64 and not isinstance(item, bool):
                return True
        elif isinstance(item, Mapping):
            stack.extend(item.values())
        elif isinstance(item, Sequence) and not isinstance(item, _TEXT_TYPES):
            stack.extend(item)
    return False


def _out_of_range_error() -> SerializationError:
    return SerializationError(
        "value holds NaN, infinity or an integer beyond signed 64 bits, which JSON here cannot hold"
    )


def _dumps(value: JSONInput) -> bytes:
    """Encode one value (see :data:`_FIRST_TRY`)."""
    try:
        return orjson.dumps(value, default=_convert, option=_FIRST_TRY)
    except TypeError:  # orjson.JSONEncodeError included
        pass
    try:
        data = orjson.dumps(value, default=_convert, option=_DUMPS_OPTIONS)
    except TypeError as exc:
        raise SerializationError(f"value is not JSON-serializable: {exc}") from exc
    if _out_of_range(value):
        raise _out_of_range_error()
    return data


def _check(value: JSONInput, data: bytes) -> None:
    """Refuse what orjson wrote but JSON values here cannot hold (see the module doc)."""
    if not _all_plain([value]):
        refused = _refused(value)
        if refused is not None:
            raise SerializationError(
                f"{refused} is not a JSON value; store its str() or use a typed collection"
            )
    # orjson writes NaN and infinities as null; refuse instead of losing them.
    if _find_null(data) and _out_of_range(value):
        raise _out_of_range_error()


class JsonCodec:
    """Strict JSON on orjson: dict keys must be str, floats finite, integers 64-bit.

    Types JSON cannot hold (UUID, Enum, datetime, set, bytes, custom objects) raise
    :class:`SerializationError`; any mapping or sequence is stored as an object or an
    array (see the module doc). Use a typed collection to store richer types.
    """

    name = "json"

    def encode(self, value: JSONInput) -> bytes:
        data = _dumps(value)
        _check(value, data)
        return data

    def encode_many(self, values: list[JSONInput]) -> list[bytes]:
        """Encode a batch; the same checks as :meth:`encode`, in fewer Python steps."""
        dumps = orjson.dumps
        try:
            encoded = [dumps(value, default=_convert, option=_FIRST_TRY) for value in values]
        except TypeError:  # a wide integer, or a value refused: one at a time
            encoded = [_dumps(value) for value in values]
        if not _all_plain(values) or any(map(_find_null, encoded)):
            for value, data in zip(values, encoded, strict=True):
                _check(value, data)
        return encoded

    @staticmethod
    def is_plain(value: object) -> bool:
        """Whether ``value`` is made of ``dict``, ``list``, ``tuple``, ``str``, ``int``,
        ``float``, ``bool`` and ``None`` only (so a driver can take it as it is)."""
        return _all_plain([value])

    def decode(self, data: bytes | str) -> JSONValue:
        try:
            return orjson.loads(data)  # type: ignore[no-any-return]
        except orjson.JSONDecodeError as exc:
            raise SerializationError(f"stored data is not valid JSON: {exc}") from exc
