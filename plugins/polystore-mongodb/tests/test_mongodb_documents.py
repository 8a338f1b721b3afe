"""Pure logic of the document layout: key escaping, key ranges, the find filter."""

from __future__ import annotations

import random
from typing import Any

import pytest
from bson.int64 import Int64
from polystore_mongodb.documents import (
    ESCAPED,
    EXPIRES,
    VALUE,
    VERSION,
    WIDE_INTS,
    escape_key,
    escape_value,
    find_filter,
    has_wide_ints,
    make_document,
    needs_escape,
    plain_ints,
    prefix_successor,
    read_value,
    unescape_key,
)
from polystore_mongodb.documents import _might_need_escape as might_need_escape

from polystore import JsonCodec

AWKWARD_KEYS = [
    "$set",
    "$",
    "a.b",
    ".",
    "..",
    "a\x00b",
    "%",
    "%25",
    "%2E",
    "%a.b",
    "$%.",
    "a$b",
    "a%b",
    "名前.ü",
    "",
    "plain",
]


@pytest.mark.parametrize("key", AWKWARD_KEYS, ids=repr)
def test_escaped_keys_round_trip(key: str) -> None:
    assert unescape_key(escape_key(key)) == key


@pytest.mark.parametrize("key", AWKWARD_KEYS, ids=repr)
def test_escaped_keys_are_storable_field_names(key: str) -> None:
    stored = escape_key(key)
    assert not stored.startswith("$")
    assert "." not in stored
    assert "\x00" not in stored


def test_escaping_is_one_to_one() -> None:
    stored = [escape_key(key) for key in AWKWARD_KEYS]
    assert len(set(stored)) == len(AWKWARD_KEYS)


def test_ordinary_keys_are_left_alone() -> None:
    for key in ["name", "a$b", "a%b", "名前", "", "_id", "v"]:
        assert escape_key(key) == key


def test_a_value_with_awkward_keys_round_trips_through_its_document() -> None:
    value: Any = {
        "$where": "1",
        "a.b": {"$gt": [{"x.y": None, "%": 1}]},
        "list": [{"$in": [1, 2]}, "$not.a.key"],
        "ok": "strings.with.$dots stay as they are",
    }
    document = make_document(value, JsonCodec().encode(value), "v1", None)
    assert document[ESCAPED] is True
    assert "$where" not in document[VALUE]
    assert document[VALUE]["ok"] == value["ok"]
    assert document[VALUE]["list"][1] == "$not.a.key"
    assert read_value(document) == value


def test_values_without_awkward_keys_are_stored_unchanged() -> None:
    value: Any = {"price": 1.5, "text": "a.b $c 100%", "items": [{"n": 1}]}
    document = make_document(value, JsonCodec().encode(value), "v1", None)
    assert document == {VALUE: value, VERSION: "v1"}
    assert document[VALUE] is value
    assert not needs_escape(value)


@pytest.mark.parametrize("key", [k for k in AWKWARD_KEYS if escape_key(k) != k], ids=repr)
def test_the_quick_look_finds_every_key_that_needs_escaping(key: str) -> None:
    codec = JsonCodec()
    for value in ({key: 1}, [{"x": "y", key: {"z": 1}}], {"a": {"b\\": [{key: None}]}}):
        assert might_need_escape(codec.encode(value)), value


def test_the_quick_look_ignores_dots_dollars_and_percents_outside_keys() -> None:
    value = {"email": "a.b@c.d", "price": 1.5, "text": "$x 100%", "list": [0.5, "a.b"]}
    assert not might_need_escape(JsonCodec().encode(value))


def test_the_quick_look_never_misses_on_random_values() -> None:
    # Keys and strings made of the characters that matter: quotes, backslashes, colons.
    rng = random.Random(7)
    alphabet = ["a", ".", "$", "%", "\x00", '"', "\\", "é", ":", ",", "{", "}"]

    def text() -> str:
        return "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 5)))

    def value(depth: int = 0) -> Any:
        roll = rng.random()
        if depth > 3 or roll < 0.3:
            return rng.choice([1, 1.5, 2.5e-7, None, True, "s.t", "$x", text()])
        if roll < 0.65:
            return {text(): value(depth + 1) for _ in range(rng.randint(0, 4))}
        return [value(depth + 1) for _ in range(rng.randint(0, 4))]

    codec = JsonCodec()
    checked = 0
    for _ in range(20_000):
        sample = value()
        if needs_escape(sample):
            checked += 1
            assert might_need_escape(codec.encode(sample)), sample
    assert checked > 5_000


def test_a_ttl_sets_an_aware_expiry_and_no_ttl_sets_none() -> None:
    with_ttl = make_document(1, b"1", "v1", 30.0)
    without = make_document(1, b"1", "v1", None)
    assert with_ttl[EXPIRES].tzinfo is not None
    assert EXPIRES not in without


def test_escape_value_leaves_scalars_and_lists_of_scalars() -> None:
    assert escape_value([1, "a.b", None]) == [1, "a.b", None]
    assert escape_value("$x") == "$x"


@pytest.mark.parametrize(
    ("prefix", "successor"),
    [
        ("a", "b"),
        ("user:", "user;"),
        ("a\\", "a]"),
        ("a\U0010ffff", "b"),
        ("\U0010ffff", None),
        ("", None),
        ("a\ud7ff", "a\ue000"),
        ("é", "ê"),
    ],
    ids=repr,
)
def test_prefix_successor_bounds_every_key_with_the_prefix(
    prefix: str, successor: str | None
) -> None:
    assert prefix_successor(prefix) == successor


def test_prefix_successor_sorts_after_every_extension_in_utf8_order() -> None:
    prefix = "k\uffff"
    upper = prefix_successor(prefix)
    assert upper is not None
    for extension in ["", "\x01", "\uffff", "\U0001f511", "\U0010ffff" * 3]:
        assert (prefix + extension).encode() < upper.encode()


def test_find_filter_excludes_arrays_missing_fields_and_expired_entries() -> None:
    query = find_filter({"f": None, "%g": 1}, now=None)  # type: ignore[arg-type]
    assert query[VALUE] == {"$not": {"$type": "array"}}
    assert query["v.f"] == {"$type": "null", "$not": {"$type": "array"}}
    assert query["v.%%25g"] == {"$eq": 1, "$not": {"$type": "array"}}
    assert EXPIRES in query


@pytest.mark.parametrize(
    ("value", "wide"),
    [
        (2**31, True),
        (-(2**31) - 1, True),
        ({"a": [1, {"b": 2**40}]}, True),
        (2**31 - 1, False),
        (-(2**31), False),
        ({"a": [True, 1.5e20, "12345678901"]}, False),
    ],
    ids=repr,
)
def test_wide_integers_are_detected(value: Any, wide: bool) -> None:
    assert has_wide_ints(value) is wide
    document = make_document(value, JsonCodec().encode(value), "v1", None)
    assert (WIDE_INTS in document) is wide


def test_int64_values_read_back_as_plain_int() -> None:
    stored = {VALUE: {"a": Int64(2**40), "b": [Int64(-5), True, 1.0]}, WIDE_INTS: True}
    value = read_value(stored)
    assert value == {"a": 2**40, "b": [-5, True, 1.0]}
    assert type(value["a"]) is int
    assert [type(x) for x in value["b"]] == [int, bool, float]
    assert type(plain_ints(Int64(3))) is int
