"""Idempotency markers: what a record stores per idempotency key, and how a repeat is judged.

:meth:`~polystore.collections.TransactionCollection.record` writes, next to each record,
a marker entry ``~idempotency:<idempotency key>`` holding::

    {"key": <the record's key>, "request": {<field>: <JSON value>, ...}}

``request`` is the payload of the first request: every field of the model except the
record's key, the idempotency key itself and the fields whose default is generated
(``default_factory``: ids, timestamps), unless the collection names its own list. A later
request with the same idempotency key is a repeat when its payload equals the first one
(compared as model values, so ``Decimal("42.10")`` equals ``Decimal("42.1")``), and a
conflict otherwise. The first request is kept in the marker, so a record updated since
(a status change) still recognises a repeat of the request that created it.

Markers written before ``request`` existed hold the record's key alone (a string); a
repeat is then compared with the stored record.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import pydantic
from pydantic import BaseModel

from polystore.errors import SerializationError, ValidationError
from polystore.types import JSONValue

__all__ = ["IDEMPOTENCY_PREFIX", "Marker", "differing_fields", "request_fields"]

IDEMPOTENCY_PREFIX = "~idempotency:"


@dataclass(frozen=True, slots=True)
class Marker:
    """A parsed idempotency marker.

    Attributes:
        key: The key of the record the idempotency key created.
        request: The first request's payload, or ``None`` for a marker that predates it.
    """

    key: str
    request: dict[str, JSONValue] | None

    def to_json(self) -> JSONValue:
        """The stored form."""
        return {"key": self.key, "request": self.request}

    @classmethod
    def parse(cls, stored: JSONValue, *, backend: str, marker: str) -> Marker:
        """Read a stored marker.

        Raises:
            SerializationError: The entry is not a marker.
        """
        if isinstance(stored, str):
            return cls(stored, None)
        if isinstance(stored, dict):
            key, request = stored.get("key"), stored.get("request")
            if isinstance(key, str) and (request is None or isinstance(request, dict)):
                return cls(key, request)
        raise SerializationError(
            "the idempotency marker holds something else", backend=backend, key=marker
        )


def request_fields(
    model: type[BaseModel], key_field: str, idempotency_field: str, names: Iterable[str] | None
) -> tuple[str, ...]:
    """The fields compared between requests with one idempotency key.

    Raises:
        ValidationError: ``names`` holds a field the model does not have.
    """
    fields = model.model_fields
    if names is not None:
        chosen = tuple(names)
        unknown = sorted(set(chosen) - set(fields))
        if unknown:
            raise ValidationError(f"{model.__name__} has no field(s) {', '.join(unknown)}")
        return chosen
    return tuple(
        name
        for name, info in fields.items()
        if name not in (key_field, idempotency_field) and info.default_factory is None
    )


def differing_fields(
    model: type[BaseModel],
    fields: tuple[str, ...],
    first: Mapping[str, Any],
    repeat: BaseModel,
    repeat_json: Mapping[str, JSONValue],
) -> tuple[str, ...]:
    """The names of ``fields`` whose values differ between two requests, sorted.

    Args:
        model: The model class.
        fields: The fields to compare.
        first: The first request's payload (JSON values, as stored in the marker).
        repeat: The new request.
        repeat_json: ``repeat`` dumped to JSON (supplies the fields ``first`` lacks).
    """
    try:
        original = model.model_validate({**repeat_json, **first})
    except pydantic.ValidationError:
        # The model changed since the first request: compare the stored JSON as it is.
        return tuple(sorted(f for f in fields if first.get(f) != repeat_json.get(f)))
    return tuple(sorted(f for f in fields if getattr(original, f) != getattr(repeat, f)))
