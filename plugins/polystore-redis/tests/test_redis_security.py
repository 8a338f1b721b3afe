"""Hostile keys and prefixes, namespace isolation, and passwords kept out of sight."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable

import pytest
import pytest_asyncio
from polystore_redis import RedisBackend, RedisSettings

from polystore import DataStore, PolystoreError, StoreUnavailableError
from polystore.testing import LocalRedisServer
from polystore.testing.services import ServiceEndpoint

pytestmark = pytest.mark.asyncio

StartRedis = Callable[..., LocalRedisServer]
PASSWORD = "S3cret-Pa55word-value"
NASTY = [
    "*",
    "?",
    "[a]",
    "[!x]",
    "\\",
    "\\*",
    ":",
    "::",
    "{",
    "}",
    "{}",
    "{tag}",
    "a*b?c[d]e\\f:{g}",
]
NASTY_PREFIXES = ["p*", "p?", "p[x]", "p\\", "p:q", "p{}", "p{tag}", "*?[]\\:{}"]


async def _keys(store: DataStore, prefix: str = "") -> list[str]:
    return sorted([key async for key in store.scan(prefix=prefix)])


@pytest_asyncio.fixture
async def backend(redis_service: ServiceEndpoint) -> AsyncIterator[RedisBackend]:
    async with RedisBackend(RedisSettings(url=redis_service.url, prefix="sec")) as backend:
        yield backend


async def test_keys_full_of_metacharacters_round_trip_and_scan_only_themselves(
    backend: RedisBackend, namespace: str
) -> None:
    store = backend.namespace(namespace)
    keys = [f"{a}{b}" for a in NASTY for b in ("", "x", *NASTY[:4])]
    unique = list(dict.fromkeys(keys))
    await store.save_many({key: key for key in unique})
    assert await store.get_many(unique) == unique
    for key in unique:
        assert await store.get(key) == key
        expected = sorted(k for k in unique if k.startswith(key))
        assert await _keys(store, key) == expected, key


@pytest.mark.parametrize("prefix", NASTY_PREFIXES)
async def test_prefixes_full_of_metacharacters_scan_only_their_own_keys(
    redis_service: ServiceEndpoint, prefix: str, namespace: str
) -> None:
    # "p" and "pX" style decoys share the server; each backend must see only its own keys.
    decoys = ["p", "px", "pp", "p*x", "q", "*"]
    backends = [
        RedisBackend(RedisSettings(url=redis_service.url, prefix=p))
        for p in dict.fromkeys([prefix, *decoys])
    ]
    try:
        for other in backends:
            await other.namespace(namespace).save_many(
                {f"{other.settings.prefix}-key": 1, "shared": other.settings.prefix}
            )
        mine = backends[0].namespace(namespace)
        assert await _keys(mine) == sorted([f"{prefix}-key", "shared"])
        assert await mine.get("shared") == prefix
        assert await mine.delete_many(["shared", "p-key", "q-key"]) == 1
    finally:
        for other in backends:
            await other.aclose()


async def test_a_namespace_cannot_read_or_scan_anothers_keys(backend: RedisBackend) -> None:
    outer = backend.namespace("iso-a")
    inner = backend.namespace("iso-a:b")
    await outer.save("b:c", "outer")
    await inner.save("c", "inner")
    assert await outer.get("b:c") == "outer"
    assert await inner.get("c") == "inner"
    assert await outer.get("b") is None
    assert await _keys(outer) == ["b:c"]
    assert await _keys(inner) == ["c"]
    assert await outer.delete_many(["c", "b:c"]) == 1
    assert await inner.get("c") == "inner"


# -- secrets ---------------------------------------------------------------------------


@pytest.fixture
def protected(private_redis: StartRedis) -> LocalRedisServer:
    server = private_redis("--requirepass", PASSWORD)
    assert PASSWORD in server.url
    return server


def _leaks(texts: list[str]) -> list[str]:
    return [text for text in texts if PASSWORD in text]


async def test_the_password_appears_in_no_repr_log_or_error(
    protected: LocalRedisServer, caplog: pytest.LogCaptureFixture, namespace: str
) -> None:
    caplog.set_level(logging.DEBUG)
    seen: list[str] = []
    settings = RedisSettings(url=protected.url, timeout=1, retry={"attempts": 1})
    backend = RedisBackend(settings)
    store = backend.namespace(namespace)
    async with backend:
        await store.save("k", {"v": 1})
        seen += [repr(settings), str(settings), repr(backend), repr(store), repr(backend.client)]
        seen.append(str(await store.health()))
        protected.kill()
        for call in (store.get("k"), store.save("k", 2), store.delete_many(["k"])):
            with pytest.raises(StoreUnavailableError) as info:
                await call
            seen += [str(info.value), repr(info.value), str(info.value.__cause__)]
        seen.append(str(await store.health()))
        protected.start()
        assert await store.get("k") == {"v": 1}
    seen += [record.getMessage() for record in caplog.records]
    seen += [str(record.args) for record in caplog.records]
    assert _leaks(seen) == []


async def test_a_wrong_password_fails_clearly_without_showing_either_password(
    protected: LocalRedisServer, caplog: pytest.LogCaptureFixture, namespace: str
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "Wr0ng-Passw0rd-value"
    url = protected.url.replace(PASSWORD, wrong)
    backend = RedisBackend(RedisSettings(url=url, timeout=1))
    with pytest.raises(StoreUnavailableError, match="authentication") as info:
        await backend.open()
    texts = [str(info.value), repr(info.value), str(info.value.__cause__), repr(backend)]
    texts += [record.getMessage() for record in caplog.records]
    assert [t for t in texts if wrong in t or PASSWORD in t] == []
    with pytest.raises(PolystoreError) as again:
        await backend.namespace(namespace).get("k")
    assert wrong not in str(again.value)
    await backend.aclose()
