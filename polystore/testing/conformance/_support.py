"""Constants and helpers shared by the conformance test classes."""

from __future__ import annotations

import asyncio
import collections
import datetime
import decimal
import enum
import time
import types
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from polystore.protocol import DataStore
from polystore.types import Capabilities, JSONValue

TTL_SHORT = 0.4
EXPIRY_DEADLINE = 15.0

JSON_VALUES: list[JSONValue] = [
    None,
    True,
    False,
    0,
    -1,
    2**53 + 1,
    2**63 - 1,
    -(2**63),
    1.5,
    -2.25e-10,
    1e300,
    "",
    "plain text",
    [],
    [1, "two", None, False, 2.5, [3], {"four": 4}],
    {},
    {"a": 1, "b": [True, None], "c": {"d": "e"}},
]


class Level(enum.IntEnum):
    """An ``IntEnum``: its members are ints, stored as the plain number."""

    LOW = 1
    HIGH = 3


class Color(enum.Enum):
    RED = "red"


class Size(str, enum.Enum):
    SMALL = "s"


NOT_JSON_VALUES: list[Any] = [
    uuid.UUID("12345678-1234-5678-1234-567812345678"),
    {"id": uuid.UUID("12345678-1234-5678-1234-567812345678")},
    Color.RED,
    [Color.RED],
    {"size": Size.SMALL},
    datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc),
    {"day": datetime.date(2024, 1, 1)},
    decimal.Decimal("1.10"),
    b"bytes",
    {"set": {1, 2}},
    float("nan"),
    {"inf": [float("inf")]},
    2**63,
    {"n": -(2**63) - 1},
    2**64,
    {1: "int key"},
    object(),
]
"""Values every store refuses with SerializationError (typed collections store them)."""

OTHER_MAPPINGS_AND_SEQUENCES: list[tuple[Any, JSONValue]] = [
    (collections.OrderedDict([("b", 1), ("a", 2)]), {"b": 1, "a": 2}),
    (collections.defaultdict(list, {"a": [1]}), {"a": [1]}),
    (types.MappingProxyType({"a": {"b": 1}}), {"a": {"b": 1}}),
    (collections.UserDict({"a.b": 1, "$c": [2]}), {"a.b": 1, "$c": [2]}),
    (collections.UserList([1, "two", None]), [1, "two", None]),
    ((1, (2, 3)), [1, [2, 3]]),
    (range(3), [0, 1, 2]),
    (collections.deque(["x"]), ["x"]),
    (
        {"nested": collections.OrderedDict(t=(1, collections.UserList([{"k": "v"}])))},
        {"nested": {"t": [1, [{"k": "v"}]]}},
    ),
]
"""Mappings and sequences of other types, with what a store returns for each."""

BAD_KEYS: list[Any] = ["", "a\x00b", "x" * 1025, "é" * 513, b"bytes", 42, None, ("t",), "\ud800"]
BAD_TTLS: list[Any] = [0, -1, -0.5, float("nan"), float("inf"), "10", True]

LITERAL_KEYS = [
    "a*",
    "a?",
    "a[bc]",
    "a[!b]",
    "a\\",
    "a\\*",
    "a%",
    "a_",
    "a.b",
    "a{tag}",
    "a|b",
    "a^$",
    "a(b)+",
    "a:b:c",
    "a'--",
    'a"q',
]


def requires(store: DataStore, *capabilities: Capabilities) -> None:
    """Skip the calling test unless ``store`` declares every capability."""
    missing = [c for c in capabilities if c not in store.capabilities]
    if missing:
        names = ", ".join(n for c in missing for n in c.names())
        pytest.skip(f"store does not declare {names}")


def lacks(store: DataStore, capability: Capabilities) -> None:
    """Skip the calling test if ``store`` declares ``capability``."""
    if capability in store.capabilities:
        pytest.skip(f"store declares {capability.names()[0]}")


async def eventually(
    check: Callable[[], Awaitable[bool]], *, timeout: float = EXPIRY_DEADLINE, every: float = 0.05
) -> bool:
    """Poll ``check`` until it returns True or ``timeout`` seconds pass; return the last result."""
    deadline = time.monotonic() + timeout
    while True:
        if await check():
            return True
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(every)


async def collect(keys: AsyncIterator[str]) -> list[str]:
    """The distinct keys of a scan, in the order first listed.

    The contract lets a key present for the whole scan be listed more than once (Redis
    ``SCAN`` repeats keys while its table resizes), never left out: the suite checks the
    set of keys listed.
    """
    return list(dict.fromkeys([key async for key in keys]))
