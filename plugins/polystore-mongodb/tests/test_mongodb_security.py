"""Injection and secrets: operator-shaped input stays data; passwords never show."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pytest
from polystore_mongodb import MongoBackend, MongoDBStore
from pymongo import MongoClient

from polystore import JSONValue, StoreError, StoreUnavailableError, ValidationError
from polystore.testing import LocalMongoServer

PASSWORD = "Tr0ub4dor-&3-secret"
USER = "app"

OPERATOR_VALUES: list[JSONValue] = [
    {"$gt": ""},
    {"$where": "sleep(10000) || true"},
    {"a": {"$ne": None}, "b.c": 1, "$set": {"v": "pwned"}},
    [{"$in": [1]}, {"x.y": "z"}],
    {"nested": {"$expr": {"$eq": ["$v", 1]}}, "\x00nul": 1, "%": "%25"},
    "{$ne: null}",
]

REGEX_LOOKING_KEYS = [".*", "^a", "a|b", "[a-z]+", "\\d", "a$", "(?i)A", "a.c", "\\", "$"]
PLAIN_KEYS = ["a", "abc", "ab", "A", "b", "z", "d", "1", "a|", "[", "x"]


@pytest.mark.asyncio
@pytest.mark.parametrize("value", OPERATOR_VALUES, ids=repr)
async def test_operator_shaped_values_round_trip_as_data(
    mongo_store: MongoDBStore, value: JSONValue
) -> None:
    await mongo_store.save("k", value)
    await mongo_store.save_many({"m": value})
    assert await mongo_store.get("k") == value
    assert await mongo_store.get_many(["m"]) == [value]
    collection = await mongo_store.collection()
    stored = await collection.find_one({"_id": "k"})
    assert stored is not None
    assert "$" not in _field_names(stored["v"])


def _field_names(value: Any) -> str:
    if isinstance(value, dict):
        return "".join(key[:1] + _field_names(child) for key, child in value.items())
    if isinstance(value, list):
        return "".join(_field_names(child) for child in value)
    return ""


@pytest.mark.asyncio
async def test_dotted_and_dollar_field_names_are_stored_escaped(mongo_store: MongoDBStore) -> None:
    value = {"a.b": 1, "$x": {"c.d": 2}}
    await mongo_store.save("k", value)
    collection = await mongo_store.collection()
    stored = await collection.find_one({"_id": "k"})
    assert stored is not None
    assert stored["v"] == {"%a%2Eb": 1, "%%24x": {"%c%2Ed": 2}}
    assert stored["esc"] is True
    assert await mongo_store.get("k") == value


@pytest.mark.asyncio
async def test_find_on_a_string_that_looks_like_an_operator_matches_only_that_string(
    mongo_store: MongoDBStore,
) -> None:
    await mongo_store.save_many(
        {"literal": {"f": "{'$ne': null}"}, "other": {"f": "x"}, "none": {"f": None}}
    )
    found = await mongo_store.find({"f": "{'$ne': null}"})
    assert [entry.key for entry in found] == ["literal"]


@pytest.mark.asyncio
async def test_find_sees_only_the_users_fields_not_the_bookkeeping(
    mongo_store: MongoDBStore,
) -> None:
    version = await mongo_store.save("bookkeeping", {"name": "x"}, ttl=60)
    await mongo_store.save("user-fields", {"ver": "mine", "_id": "fake", "exp": 1, "v": 2})
    assert await mongo_store.find({"ver": version}) == []
    assert await mongo_store.find({"_id": "bookkeeping"}) == []
    for where in ({"ver": "mine"}, {"_id": "fake"}, {"exp": 1}, {"v": 2}):
        assert [e.key for e in await mongo_store.find(where)] == ["user-fields"]


@pytest.mark.asyncio
async def test_find_on_a_field_that_needs_escaping_matches_the_escaped_field(
    mongo_store: MongoDBStore,
) -> None:
    await mongo_store.save_many({"p": {"%off": 5}, "q": {"%25off": 5}, "r": {"off": 5}})
    assert [e.key for e in await mongo_store.find({"%off": 5})] == ["p"]
    assert [e.key for e in await mongo_store.find({"%25off": 5})] == ["q"]


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "where",
    [{"f": {"$regex": ".*"}}, {"$expr": 1}, {"f.g": 1}, {"f": ["$in"]}, {"f\x00": 1}],
    ids=repr,
)
async def test_operator_shaped_filters_are_rejected(
    mongo_store: MongoDBStore, where: dict[str, Any]
) -> None:
    await mongo_store.save("k", {"f": "x"})
    with pytest.raises(ValidationError):
        await mongo_store.find(where)


@pytest.mark.asyncio
async def test_regex_looking_keys_match_only_themselves_in_scan(
    mongo_store: MongoDBStore,
) -> None:
    every = REGEX_LOOKING_KEYS + PLAIN_KEYS
    await mongo_store.save_many({key: key for key in every})
    for prefix in REGEX_LOOKING_KEYS:
        found = [key async for key in mongo_store.scan(prefix=prefix)]
        assert found == sorted(k for k in every if k.startswith(prefix)), prefix
    for key in REGEX_LOOKING_KEYS:
        assert await mongo_store.get(key) == key


@pytest.mark.asyncio
async def test_scan_returns_keys_in_order_across_pages(mongo_store: MongoDBStore) -> None:
    keys = ["p/é", "p/z", "p/\uffff", "p/\U0001f511", "p/A", "p/a", "p0", "q"]
    await mongo_store.save_many(dict.fromkeys(keys, 1))
    found = [key async for key in mongo_store.scan(prefix="p/", batch_size=2)]
    assert found == sorted((k for k in keys if k.startswith("p/")), key=str.encode)


# -- secrets --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def auth_server(private_mongo: Callable[..., LocalMongoServer]) -> LocalMongoServer:
    """A private server requiring SCRAM authentication, with one user."""
    server = private_mongo()
    with MongoClient(server.url) as client:
        client.admin.command(
            "createUser", USER, pwd=PASSWORD, roles=[{"role": "root", "db": "admin"}]
        )
    server.stop()
    server.extra_args.append("--auth")
    server.start()
    return server


def _url(server: LocalMongoServer, password: str) -> str:
    where = f"127.0.0.1:{server.port}/sec?directConnection=true&authSource=admin"
    return f"mongodb://{USER}:{password}@{where}"


@pytest.mark.asyncio
async def test_the_right_password_is_accepted(
    auth_server: LocalMongoServer, make_settings: Any
) -> None:
    async with MongoBackend(make_settings(_url(auth_server, PASSWORD), database=None)) as backend:
        store = backend.namespace("n")
        await store.save("k", "v")
        assert await store.get("k") == "v"
        assert PASSWORD not in repr(backend)
        assert PASSWORD not in repr(store)


@pytest.mark.asyncio
@pytest.mark.usefixtures("reap_driver_sockets")
async def test_no_password_in_errors_reprs_health_or_logs(
    auth_server: LocalMongoServer, make_settings: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    settings = make_settings(_url(auth_server, PASSWORD + "-wrong"), timeout=3)
    backend = MongoBackend(settings)
    store = backend.namespace("n")
    with pytest.raises(StoreError) as info:
        await store.save("k", "v")
    assert not isinstance(info.value, StoreUnavailableError)  # retrying cannot help
    assert "authentication" in str(info.value)
    health = await backend.health()
    await backend.aclose()
    assert health.ok is False
    texts = [
        str(info.value),
        repr(info.value),
        str(info.value.__cause__),
        repr(settings),
        repr(backend),
        health.detail,
        caplog.text,
    ]
    assert "connecting to mongodb://app:***@127.0.0.1" in caplog.text  # the backend's own log
    for text in texts:
        assert PASSWORD not in text


@pytest.mark.asyncio
@pytest.mark.usefixtures("reap_driver_sockets")
async def test_an_unreachable_server_error_does_not_show_the_password(
    make_settings: Any,
) -> None:
    url = f"mongodb://{USER}:{PASSWORD}@127.0.0.1:9/?directConnection=true"
    backend = MongoBackend(make_settings(url, timeout=0.5))
    with pytest.raises(StoreUnavailableError) as info:
        await backend.namespace("n").get("k")
    await backend.aclose()
    assert PASSWORD not in str(info.value)
    assert PASSWORD not in str(info.value.__cause__)
