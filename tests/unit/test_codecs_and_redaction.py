from __future__ import annotations

import asyncio
import collections
import datetime
import enum
import pickle
import types
import uuid

import pytest

from polystore import (
    ConflictError,
    JsonCodec,
    PolystoreError,
    RetryPolicy,
    SerializationError,
    StoreUnavailableError,
    new_versions,
    redact_url,
)
from polystore.errors import RouteRequirementError
from polystore.redact import redact_text

NOT_JSON: list[object] = [
    float("nan"),
    {"a": [float("inf")]},
    {1: "x"},
    datetime.datetime.now(),
    {1, 2},
    b"x",
    uuid.UUID(int=7),
    {"id": [uuid.UUID(int=7)]},
    enum.Enum("Color", "RED").RED,  # type: ignore[attr-defined]
    2**63,
    {"n": [2**64 - 1]},
]


@pytest.mark.parametrize("value", NOT_JSON, ids=repr)
def test_json_codec_refuses_what_json_cannot_hold(value: object) -> None:
    with pytest.raises(SerializationError):
        JsonCodec().encode(value)  # type: ignore[arg-type]


@pytest.mark.parametrize("value", NOT_JSON, ids=repr)
def test_json_codec_batches_refuse_what_single_values_refuse(value: object) -> None:
    with pytest.raises(SerializationError):
        JsonCodec().encode_many([{"fine": 1}, value])  # type: ignore[list-item]


def test_json_codec_batches_encode_as_single_values_do() -> None:
    codec = JsonCodec()
    values = [None, {"a": None}, [1.5, "null"], "x", 2**63 - 1, {"nested": {"b": [True]}}]
    assert codec.encode_many(values) == [codec.encode(value) for value in values]
    assert codec.encode_many([]) == []


def test_json_codec_stores_any_mapping_or_sequence_as_plain_json() -> None:
    codec = JsonCodec()
    value = types.MappingProxyType(
        {"a": collections.OrderedDict(b=collections.UserList([1, (2,)])), "r": range(2)}
    )
    assert codec.decode(codec.encode(value)) == {"a": {"b": [1, [2]]}, "r": [0, 1]}
    assert codec.encode_many([value]) == [codec.encode(value)]


def test_json_codec_names_the_refused_type_but_not_the_value() -> None:
    with pytest.raises(SerializationError, match="UUID") as caught:
        JsonCodec().encode({"id": uuid.UUID(int=7)})
    assert str(uuid.UUID(int=7)) not in str(caught.value)


def test_batch_versions_are_distinct_16_hex_tokens() -> None:
    versions = new_versions(1000)
    assert len(set(versions)) == 1000
    assert all(len(v) == 16 and int(v, 16) >= 0 for v in versions)


def test_json_codec_keeps_null_values() -> None:
    codec = JsonCodec()
    assert codec.decode(codec.encode({"a": None, "b": [None]})) == {"a": None, "b": [None]}


def test_json_codec_reports_corrupt_data() -> None:
    with pytest.raises(SerializationError):
        JsonCodec().decode(b"{not json")


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("redis://:pw@localhost:6379/0", "redis://:***@localhost:6379/0"),
        ("rediss://user:pw@h:1/2", "rediss://user:***@h:1/2"),
        (
            "postgresql://u:p%40ss@h1,h2/db?sslmode=require",
            "postgresql://u:***@h1,h2/db?sslmode=require",
        ),
        ("mongodb+srv://a:b@cluster/db", "mongodb+srv://a:***@cluster/db"),
        ("postgresql://h/db?password=pw", "postgresql://h/db?password=***"),
        ("unix:///tmp/r.sock?password=pw", "unix:///tmp/r.sock?password=***"),
        ("redis://localhost:6379", "redis://localhost:6379"),
    ],
)
def test_urls_are_redacted(url: str, expected: str) -> None:
    assert redact_url(url) == expected


def test_free_text_is_redacted() -> None:
    text = "could not connect to postgresql://bob:hunter2@db:5432 (password=hunter2)"
    assert "hunter2" not in redact_text(text)


def test_errors_carry_context_and_survive_pickling() -> None:
    error = ConflictError("version mismatch", backend="b", operation="save", key="k")
    assert str(error) == "version mismatch [backend='b', operation='save', key='k']"
    clone = pickle.loads(pickle.dumps(error))
    assert isinstance(clone, ConflictError)
    assert clone.key == "k"
    route_error = RouteRequirementError("m", route="r", missing=("ttl",))
    assert pickle.loads(pickle.dumps(route_error)).missing == ("ttl",)


def test_long_keys_are_shortened_in_messages() -> None:
    error = PolystoreError("boom", key="k" * 500)
    assert len(str(error)) < 200


def test_retry_policy_retries_only_unavailable_errors() -> None:
    calls = 0

    async def flaky() -> str:
        nonlocal calls
        calls += 1
        if calls < 3:
            raise StoreUnavailableError("down")
        return "up"

    policy = RetryPolicy(attempts=3, base_delay=0.001)

    async def call_with_retry() -> str:
        try:
            return await flaky()
        except StoreUnavailableError as exc:
            return await policy.retry(exc, flaky)

    assert asyncio.run(call_with_retry()) == "up"
    assert calls == 3

    with pytest.raises(ConflictError):
        asyncio.run(policy.retry(ConflictError("no"), flaky))


def test_retry_policy_gives_up_after_its_attempts() -> None:
    async def down() -> str:
        raise StoreUnavailableError("still down")

    with pytest.raises(StoreUnavailableError, match="still down"):
        asyncio.run(
            RetryPolicy(attempts=2, base_delay=0.001).retry(StoreUnavailableError("x"), down)
        )


def test_retry_delays_grow_and_are_capped() -> None:
    policy = RetryPolicy(base_delay=0.1, max_delay=0.3)
    assert all(0 <= policy.delay(n) <= 0.3 for n in range(1, 10) for _ in range(20))


def test_int_subclasses_such_as_driver_int64_are_stored_as_plain_ints() -> None:
    import enum

    class Int64(int):
        pass

    class Level(enum.IntEnum):
        HIGH = 3

    codec = JsonCodec()
    assert codec.decode(codec.encode({"a": Int64(2**40), "b": Level.HIGH})) == {
        "a": 2**40,
        "b": 3,
    }


class DriverError(ConflictError):
    def __init__(self, message: str, *, sqlstate: str, backend: str | None = None) -> None:
        self.sqlstate = sqlstate
        super().__init__(message, backend=backend, key="k")


def test_subclass_fields_survive_pickling_without_code_of_their_own() -> None:
    error = DriverError("serialization failure", sqlstate="40001", backend="ledger")
    clone = pickle.loads(pickle.dumps(error))
    assert type(clone) is DriverError
    assert (clone.sqlstate, clone.backend, clone.key) == ("40001", "ledger", "k")
    assert str(clone) == str(error)
