"""Batch helpers of the sharded store: checking input, grouping keys, running groups."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import TypeVar

from polystore.codecs import JsonCodec
from polystore.errors import SerializationError, ValidationError
from polystore.types import JSONInput
from polystore.validation import validate_key, validate_keys

__all__ = ["bounded", "check_keys", "check_values", "gather_all", "group_by", "split_items"]

T = TypeVar("T")
CONCURRENCY = 64
"""Most single-key calls in flight when a batch falls back to them (during a move)."""


async def gather_all(aws: Iterable[Awaitable[T]]) -> list[T]:
    """Await every call (none is abandoned half-way), then raise the first error, if any."""
    results = await asyncio.gather(*aws, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return results  # type: ignore[return-value]  # no exception is left in the list


async def bounded(call: Callable[[str], Awaitable[T]], keys: list[str]) -> list[T]:
    """``call(key)`` for every key, at most :data:`CONCURRENCY` at a time, in order."""
    limit = asyncio.Semaphore(CONCURRENCY)

    async def one(key: str) -> T:
        async with limit:
            return await call(key)

    return await gather_all(one(key) for key in keys)


def group_by(owner: Callable[[str], str], keys: Sequence[str]) -> dict[str, list[int]]:
    """Shard id -> positions of its keys in ``keys``."""
    groups: dict[str, list[int]] = {}
    for index, key in enumerate(keys):
        shard = owner(key)
        found = groups.get(shard)
        if found is None:
            groups[shard] = [index]
        else:
            found.append(index)
    return groups


def check_keys(keys: object) -> list[str]:
    """A batch's keys as a list, each checked.

    Raises:
        ValidationError: A bad key, or a single str passed as the batch.
    """
    if isinstance(keys, (str, bytes)) or not isinstance(keys, Iterable):
        raise ValidationError("keys must be a sequence of str, not a single str")
    checked = list(keys)
    validate_keys(checked)
    return checked


def split_items(
    items: Mapping[str, JSONInput] | Iterable[tuple[str, JSONInput]],
) -> tuple[list[str], list[JSONInput]]:
    """Keys and values of a ``save_many`` batch, keys checked and unique.

    Raises:
        ValidationError: A bad key, a repeated key, or an item that is not a pair.
    """
    if isinstance(items, Mapping):
        keys = list(items)
        validate_keys(keys)
        return keys, list(items.values())
    keys, values, seen = [], [], set()
    for pair in items:
        try:
            key, value = pair
        except (TypeError, ValueError):
            raise ValidationError("save_many items must be (key, value) pairs") from None
        validate_key(key)
        if key in seen:
            raise ValidationError("save_many got the same key twice", key=key)
        seen.add(key)
        keys.append(key)
        values.append(value)
    return keys, values


def check_values(keys: list[str], values: list[JSONInput], *, limit: int | None, name: str) -> None:
    """Check that every value encodes as JSON within ``limit`` bytes, before any write.

    Raises:
        SerializationError: A value JSON cannot hold (naming its key).
        ValidationError: A value larger than ``limit`` encoded.
    """
    codec = JsonCodec()
    try:
        encoded = codec.encode_many(values)
    except SerializationError as exc:
        pairs = zip(keys, values, strict=True)
        key = next((k for k, v in pairs if not _encodes(codec, v)), None)
        raise SerializationError(exc.message, backend=name, operation="save_many", key=key) from exc
    if limit is not None:
        for key, data in zip(keys, encoded, strict=True):
            if len(data) > limit:
                raise ValidationError(
                    f"value is {len(data)} bytes encoded; the limit is {limit}",
                    backend=name,
                    operation="save_many",
                    key=key,
                )


def _encodes(codec: JsonCodec, value: JSONInput) -> bool:
    try:
        codec.encode(value)
    except SerializationError:
        return False
    return True
