"""Codecs turn JSON values into bytes and back. JSON (orjson) is the default; no pickle."""

from __future__ import annotations

import math
import re
from typing import Any, Protocol, runtime_checkable

import orjson

from polystore.errors import PluginError, SerializationError
from polystore.types import JSONInput, JSONValue

__all__ = ["Codec", "CodecRegistry", "JsonCodec"]

_DUMPS_OPTIONS = (
    orjson.OPT_PASSTHROUGH_DATETIME
    | orjson.OPT_PASSTHROUGH_DATACLASS
    | orjson.OPT_PASSTHROUGH_SUBCLASS
)


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


def _reject(value: Any) -> Any:
    # Number subclasses (a driver's Int64, an IntEnum) are stored as the plain number.
    if isinstance(value, int) and not isinstance(value, bool):
        return int(value)
    if isinstance(value, float):
        return float(value)
    raise TypeError(f"{type(value).__name__} is not a JSON value")


def _find_non_finite(value: object) -> bool:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, float):
            if not math.isfinite(item):
                return True
        elif isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, (list, tuple)):
            stack.extend(item)
    return False


class JsonCodec:
    """Strict JSON on orjson: dict keys must be str, floats finite, integers 64-bit.

    Types JSON cannot hold (datetime, set, bytes, custom objects) raise
    :class:`SerializationError`; use a typed collection to store richer types.
    """

    name = "json"

    def encode(self, value: JSONInput) -> bytes:
        try:
            data = orjson.dumps(value, default=_reject, option=_DUMPS_OPTIONS)
        except (TypeError, orjson.JSONEncodeError) as exc:
            raise SerializationError(f"value is not JSON-serializable: {exc}") from exc
        # orjson writes NaN and infinities as null; refuse instead of losing them.
        if _find_null(data) and _find_non_finite(value):
            raise SerializationError("value contains NaN or infinity, which JSON cannot hold")
        return data

    def encode_many(self, values: list[JSONInput]) -> list[bytes]:
        """Encode a batch; the same checks as :meth:`encode`, in fewer Python steps."""
        dumps = orjson.dumps
        try:
            encoded = [dumps(value, default=_reject, option=_DUMPS_OPTIONS) for value in values]
        except (TypeError, orjson.JSONEncodeError) as exc:
            raise SerializationError(f"value is not JSON-serializable: {exc}") from exc
        for value, data in zip(values, encoded, strict=True):
            if _find_null(data) and _find_non_finite(value):
                raise SerializationError("value contains NaN or infinity, which JSON cannot hold")
        return encoded

    def decode(self, data: bytes | str) -> JSONValue:
        try:
            return orjson.loads(data)  # type: ignore[no-any-return]
        except orjson.JSONDecodeError as exc:
            raise SerializationError(f"stored data is not valid JSON: {exc}") from exc


class CodecRegistry:
    """Codecs by name; ``json`` is always present. Plugins add more through a hook."""

    def __init__(self) -> None:
        self._codecs: dict[str, Codec] = {"json": JsonCodec()}

    def register(self, codec: Codec) -> None:
        """Add a codec.

        Raises:
            PluginError: Another codec already has that name.
        """
        if not isinstance(codec, Codec):
            raise PluginError(f"{codec!r} does not implement the Codec protocol")
        if codec.name in self._codecs:
            raise PluginError(f"a codec named {codec.name!r} is already registered")
        self._codecs[codec.name] = codec

    def get(self, name: str) -> Codec:
        """Return the codec called ``name``.

        Raises:
            PluginError: No codec has that name.
        """
        try:
            return self._codecs[name]
        except KeyError:
            known = ", ".join(sorted(self._codecs))
            raise PluginError(f"no codec named {name!r}; known: {known}") from None

    def names(self) -> list[str]:
        """Registered codec names, sorted."""
        return sorted(self._codecs)
