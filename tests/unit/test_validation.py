"""Bad input raises ValidationError before any I/O.

The store under test sits on a backend whose database path cannot be created, so any I/O
would fail with StoreUnavailableError; a ValidationError proves the check came first.
"""

from __future__ import annotations

import math
from typing import Any

import pytest

from polystore import (
    Capabilities,
    DataStore,
    SerializationError,
    StoreUnavailableError,
    ValidationError,
    Version,
)
from polystore.backends.memory import MemoryBackend, MemorySettings
from polystore.backends.sqlite import SqliteBackend, SqliteSettings
from polystore.validation import (
    matches_where,
    validate_key,
    validate_keys,
    validate_ttl,
    validate_where,
)

BAD_KEYS: list[Any] = ["", "a\x00b", "x" * 1025, "€" * 342, b"k", 7, None, ["k"], "\udcff"]
BAD_TTLS: list[Any] = [0, -1, -0.001, math.nan, math.inf, -math.inf, "5", True, 10**12]


@pytest.fixture
def unreachable_store() -> DataStore:
    backend = SqliteBackend(SqliteSettings(path="/proc/polystore-no-such-dir/db.sqlite"))
    return backend.namespace("ns")


@pytest.mark.asyncio
async def test_the_unreachable_store_really_fails_on_io(unreachable_store: DataStore) -> None:
    with pytest.raises(StoreUnavailableError):
        await unreachable_store.get("fine")


@pytest.mark.asyncio
@pytest.mark.parametrize("key", BAD_KEYS, ids=repr)
async def test_bad_keys_fail_before_io(unreachable_store: DataStore, key: Any) -> None:
    with pytest.raises(ValidationError):
        await unreachable_store.save(key, 1)
    with pytest.raises(ValidationError):
        await unreachable_store.get(key)
    with pytest.raises(ValidationError):
        await unreachable_store.get_many(["fine", key])
    with pytest.raises(ValidationError):
        await unreachable_store.delete_many(["fine", key])
    with pytest.raises(ValidationError):
        await unreachable_store.save_many([("fine", 1), (key, 1)])
    if isinstance(key, str | bytes | int):
        with pytest.raises(ValidationError):
            await unreachable_store.save_many({"fine": 1, key: 1})


@pytest.mark.parametrize("key", BAD_KEYS, ids=repr)
def test_batch_key_checks_refuse_what_single_key_checks_refuse(key: Any) -> None:
    with pytest.raises(ValidationError) as single:
        validate_key(key)
    with pytest.raises(ValidationError) as batch:
        validate_keys(["fine", key, "also-fine"])
    assert batch.value.message == single.value.message


def test_batch_key_checks_accept_what_single_key_checks_accept() -> None:
    good = ["k", "user:1", "é" * 512, "k" * 1024, "a b", "日本"]
    validate_keys(good)
    validate_keys([])
    assert [validate_key(key) for key in good] == good


@pytest.mark.asyncio
@pytest.mark.parametrize("ttl", BAD_TTLS, ids=repr)
async def test_bad_ttls_fail_before_io(unreachable_store: DataStore, ttl: Any) -> None:
    with pytest.raises(ValidationError):
        await unreachable_store.save("k", 1, ttl=ttl)


@pytest.mark.asyncio
async def test_if_version_with_if_absent_fails_before_io(unreachable_store: DataStore) -> None:
    with pytest.raises(ValidationError, match="together"):
        await unreachable_store.save("k", 1, if_version=Version("v"), if_absent=True)


@pytest.mark.asyncio
async def test_a_value_over_the_size_limit_fails_before_io() -> None:
    backend = SqliteBackend(
        SqliteSettings(path="/proc/polystore-no-such-dir/db.sqlite", max_value_bytes=100)
    )
    with pytest.raises(ValidationError, match="limit"):
        await backend.namespace("ns").save("k", "x" * 200)
    with pytest.raises(ValidationError, match="limit") as batch:
        await backend.namespace("ns").save_many({"small": "x", "big": "x" * 200})
    assert batch.value.key == "big"


@pytest.mark.asyncio
async def test_a_value_the_codec_refuses_in_a_batch_names_its_key(
    unreachable_store: DataStore,
) -> None:
    with pytest.raises(SerializationError) as batch:
        await unreachable_store.save_many({"ok": {"a": 1}, "nan": {"a": math.nan}})
    assert batch.value.key == "nan"
    with pytest.raises(SerializationError) as pairs:
        await unreachable_store.save_many([("ok", 1), ("set", {1, 2})])
    assert pairs.value.key == "set"


@pytest.mark.asyncio
async def test_a_str_passed_as_keys_is_rejected(unreachable_store: DataStore) -> None:
    with pytest.raises(ValidationError, match="single str"):
        await unreachable_store.get_many("abc")


def test_a_key_of_exactly_1024_utf8_bytes_is_accepted() -> None:
    assert validate_key("é" * 512) == "é" * 512
    assert validate_key("k" * 1024) == "k" * 1024


def test_valid_ttls_become_floats() -> None:
    assert validate_ttl(None) is None
    assert validate_ttl(1) == 1.0
    assert validate_ttl(0.25) == 0.25


@pytest.mark.parametrize(
    "where",
    [{"a": {"$ne": None}}, {"$or": []}, {"a.b": 1}, {"a": [1]}, {"a": math.nan}, "a=1"],
    ids=repr,
)
def test_operator_shaped_filters_are_rejected(where: Any) -> None:
    with pytest.raises(ValidationError):
        validate_where(where)


def test_match_semantics_keep_bools_numbers_and_null_apart() -> None:
    assert matches_where({"f": 1.0}, {"f": 1})
    assert not matches_where({"f": True}, {"f": 1})
    assert not matches_where({"f": 1}, {"f": True})
    assert not matches_where({}, {"f": None})
    assert matches_where({"f": None}, {"f": None})
    assert not matches_where(["f"], {"f": None})


@pytest.mark.asyncio
async def test_unsupported_capabilities_are_refused_before_io() -> None:
    class NoTtlBackend(MemoryBackend):
        def _make_store(self, namespace: str) -> DataStore:
            store = super()._make_store(namespace)
            store.capabilities = Capabilities.CAS
            return store

    store = NoTtlBackend(MemorySettings()).namespace("ns")
    from polystore import UnsupportedOperationError

    with pytest.raises(UnsupportedOperationError, match="ttl"):
        await store.save("k", 1, ttl=5)
    assert await store.get("k") is None


@pytest.mark.asyncio
async def test_an_unhashable_key_in_save_many_is_a_validation_error(
    unreachable_store: DataStore,
) -> None:
    with pytest.raises(ValidationError):
        await unreachable_store.save_many([(["k"], 1)])  # type: ignore[list-item]
