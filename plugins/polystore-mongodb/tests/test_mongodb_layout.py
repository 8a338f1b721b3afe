"""What the backend writes to MongoDB and how it reads documents back."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from polystore_mongodb import MongoBackend, MongoDBStore

from polystore import (
    AlreadyExistsError,
    ConflictError,
    JSONValue,
    SerializationError,
    ValidationError,
    Version,
)

pytestmark = pytest.mark.asyncio


async def raw(store: MongoDBStore, key: str) -> dict[str, Any] | None:
    collection = await store.collection()
    return await collection.find_one({"_id": key})


async def plant_expired(store: MongoDBStore, key: str, value: JSONValue = "stale") -> None:
    """A document that expired a minute ago but that the TTL monitor has not removed yet."""
    collection = await store.ensure_indexes()
    past = datetime.now(timezone.utc) - timedelta(minutes=1)
    await collection.replace_one(
        {"_id": key}, {"v": value, "ver": "0000000000000000", "exp": past}, upsert=True
    )


async def test_each_key_is_one_document_with_value_version_and_expiry(
    mongo_store: MongoDBStore,
) -> None:
    version = await mongo_store.save("k", {"_id": "not-the-key", "ver": 1}, ttl=60)
    document = await raw(mongo_store, "k")
    assert document is not None
    assert set(document) == {"_id", "v", "ver", "exp"}
    assert document["_id"] == "k"
    assert document["v"] == {"_id": "not-the-key", "ver": 1}
    assert document["ver"] == version
    assert isinstance(document["exp"], datetime)


async def test_a_save_without_ttl_stores_no_expiry_field(mongo_store: MongoDBStore) -> None:
    await mongo_store.save("k", 1, ttl=60)
    await mongo_store.save("k", 2)
    document = await raw(mongo_store, "k")
    assert document is not None
    assert "exp" not in document


async def test_namespaces_live_in_their_own_collections(mongo_backend: MongoBackend) -> None:
    store = mongo_backend.namespace("cache/sessions:v1")
    assert isinstance(store, MongoDBStore)
    await store.save("k", 1)
    database = await mongo_backend.database()
    assert store.collection_name == "polystore.cache/sessions:v1"
    assert store.collection_name in await database.list_collection_names()
    await database.drop_collection(store.collection_name)


async def test_the_ttl_index_is_created_once_on_first_write(mongo_store: MongoDBStore) -> None:
    await asyncio.gather(*(mongo_store.save(f"k{i}", i) for i in range(20)))
    collection = await mongo_store.collection()
    indexes = await collection.index_information()
    ttl = [spec for spec in indexes.values() if spec["key"] == [("exp", 1)]]
    assert len(ttl) == 1
    assert ttl[0]["expireAfterSeconds"] == 0


async def test_large_integers_come_back_as_plain_int(mongo_store: MongoDBStore) -> None:
    await mongo_store.save("k", {"big": 2**62, "list": [-(2**63)]})
    value = await mongo_store.get("k")
    assert isinstance(value, dict)
    assert type(value["big"]) is int
    assert isinstance(value["list"], list)
    assert type(value["list"][0]) is int


async def test_a_value_read_with_wide_integers_can_be_saved_back(
    mongo_store: MongoDBStore,
) -> None:
    await mongo_store.save("k", {"n": 2**40, "deep": [{"m": -(2**35)}], "small": 7})
    value = await mongo_store.get("k")
    await mongo_store.save("k", value)  # JSON encoding would refuse bson.Int64
    document = await raw(mongo_store, "k")
    assert document is not None
    assert document["i64"] is True
    assert await mongo_store.get("k") == {"n": 2**40, "deep": [{"m": -(2**35)}], "small": 7}


async def test_only_values_with_wide_integers_are_marked(mongo_store: MongoDBStore) -> None:
    await mongo_store.save("small", {"n": 2**31 - 1, "id": "12345678901234", "f": 12345678901.5})
    document = await raw(mongo_store, "small")
    assert document is not None
    assert "i64" not in document


async def test_an_integer_beyond_64_bits_is_a_serialization_error(
    mongo_store: MongoDBStore,
) -> None:
    with pytest.raises(SerializationError):
        await mongo_store.save("k", 2**64 - 1)
    assert await mongo_store.get("k") is None


async def test_a_value_beyond_the_bson_limit_is_a_validation_error(
    mongo_backend: MongoBackend, make_settings: Any
) -> None:
    async with MongoBackend(make_settings(max_value_bytes=64 * 1024 * 1024)) as backend:
        store = backend.namespace(f"big-{id(backend)}")
        with pytest.raises(ValidationError):
            await store.save("k", {"blob": "x" * (17 * 1024 * 1024)})
        assert await store.get("k") is None


# -- expired documents the TTL monitor has not removed yet ---------------------------------


async def test_an_expired_document_is_invisible_to_every_read(mongo_store: MongoDBStore) -> None:
    await plant_expired(mongo_store, "gone", {"kind": "x"})
    await mongo_store.save("live", {"kind": "x"})
    assert await raw(mongo_store, "gone") is not None
    assert await mongo_store.get("gone") is None
    assert await mongo_store.get_entry("gone") is None
    assert await mongo_store.exists("gone") is False
    assert await mongo_store.get_many(["gone", "live"]) == [None, {"kind": "x"}]
    assert [key async for key in mongo_store.scan()] == ["live"]
    assert [entry.key for entry in await mongo_store.find({"kind": "x"})] == ["live"]


async def test_an_expired_document_does_not_block_create_only(mongo_store: MongoDBStore) -> None:
    await plant_expired(mongo_store, "k")
    version = await mongo_store.save("k", "fresh", if_absent=True)
    entry = await mongo_store.get_entry("k")
    assert entry is not None
    assert (entry.value, entry.version, entry.expires_at) == ("fresh", version, None)


async def test_an_expired_document_does_not_count_as_deleted(mongo_store: MongoDBStore) -> None:
    await plant_expired(mongo_store, "a")
    await plant_expired(mongo_store, "b")
    await mongo_store.save("c", 1)
    assert await mongo_store.delete("a") is False
    assert await mongo_store.delete_many(["b", "c"]) == 1


async def test_cas_against_an_expired_document_conflicts(mongo_store: MongoDBStore) -> None:
    await plant_expired(mongo_store, "k")
    with pytest.raises(ConflictError):
        await mongo_store.save("k", "new", if_version=Version("0000000000000000"))
    with pytest.raises(ConflictError):
        await mongo_store.delete("k", if_version=Version("0000000000000000"))


async def test_create_only_on_a_live_key_is_already_exists(mongo_store: MongoDBStore) -> None:
    await mongo_store.save("k", "first", ttl=60)
    with pytest.raises(AlreadyExistsError):
        await mongo_store.save("k", "second", if_absent=True)
    assert await mongo_store.get("k") == "first"


async def test_concurrent_create_only_writes_let_exactly_one_win(
    mongo_store: MongoDBStore,
) -> None:
    async def create(i: int) -> bool:
        try:
            await mongo_store.save("k", i, if_absent=True)
        except AlreadyExistsError:
            return False
        return True

    wins = await asyncio.gather(*(create(i) for i in range(20)))
    assert wins.count(True) == 1
    assert await mongo_store.get("k") == wins.index(True)


async def test_concurrent_plain_saves_of_a_new_key_all_succeed(mongo_store: MongoDBStore) -> None:
    versions = await asyncio.gather(*(mongo_store.save("new", i) for i in range(20)))
    entry = await mongo_store.get_entry("new")
    assert entry is not None
    assert entry.version in versions
