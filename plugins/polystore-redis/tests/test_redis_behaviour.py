"""What the Redis backend does on the server: layout, commands sent, expiry, capabilities."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import orjson
import pytest
import pytest_asyncio
import redis.asyncio as aioredis
from polystore_redis import RedisBackend, RedisSettings, RedisStore

from polystore import (
    AlreadyExistsError,
    Capabilities,
    ConflictError,
    StoreUnavailableError,
)
from polystore.testing import LocalRedisServer
from polystore.testing.services import ServiceEndpoint

pytestmark = pytest.mark.asyncio

StartRedis = Callable[..., LocalRedisServer]


@pytest_asyncio.fixture
async def raw(redis_service: ServiceEndpoint) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_service.url)
    yield client
    await client.aclose()


@pytest_asyncio.fixture
async def backend(redis_service: ServiceEndpoint) -> AsyncIterator[RedisBackend]:
    async with RedisBackend(RedisSettings(url=redis_service.url, prefix="beh")) as backend:
        yield backend


@pytest.fixture
def store(backend: RedisBackend, namespace: str) -> RedisStore:
    store = backend.namespace(namespace)
    assert isinstance(store, RedisStore)
    return store


async def _commands(client: aioredis.Redis) -> dict[str, int]:
    stats = await client.info("commandstats")
    return {name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in stats.items()}


async def _delta(client: aioredis.Redis, before: dict[str, int]) -> dict[str, int]:
    after = await _commands(client)
    changed = {k: n - before.get(k, 0) for k, n in after.items() if n != before.get(k, 0)}
    changed.pop("info", None)
    return changed


# -- layout ----------------------------------------------------------------------------


async def test_a_value_is_one_string_of_version_then_json(
    store: RedisStore, raw: aioredis.Redis, namespace: str
) -> None:
    version = await store.save("user:1", {"name": "Ada"})
    stored = await raw.get(f"beh:{namespace}:user:1")
    assert stored == version.encode() + orjson.dumps({"name": "Ada"})


async def test_save_with_ttl_sets_a_millisecond_expiry_and_a_plain_save_clears_it(
    store: RedisStore, raw: aioredis.Redis, namespace: str
) -> None:
    await store.save("k", 1, ttl=30)
    with_ttl = await raw.pttl(f"beh:{namespace}:k")
    await store.save("k", 2)
    assert 29_000 < with_ttl <= 30_000
    assert await raw.pttl(f"beh:{namespace}:k") == -1


async def test_get_entry_reports_the_expiry_and_none_without_ttl(store: RedisStore) -> None:
    await store.save("short", "v", ttl=100)
    await store.save("forever", "v")
    short = await store.get_entry("short")
    forever = await store.get_entry("forever")
    assert short is not None
    assert short.expires_at is not None
    assert forever is not None
    assert forever.expires_at is None


async def test_save_many_with_ttl_expires_every_key(
    store: RedisStore, raw: aioredis.Redis, namespace: str
) -> None:
    await store.save_many({f"k{i}": i for i in range(50)}, ttl=20)
    ttls = [await raw.pttl(f"beh:{namespace}:k{i}") for i in range(50)]
    assert all(19_000 < t <= 20_000 for t in ttls)


# -- commands sent ---------------------------------------------------------------------


async def _load_scripts(store: RedisStore) -> None:
    """Run every script once, so later counts hold no NOSCRIPT + SCRIPT LOAD."""
    version = await store.save("warm-up", 0)
    await store.get_entry("warm-up")
    version = await store.save("warm-up", 1, if_version=version)
    await store.delete("warm-up", if_version=version)


# Commands a script runs are counted too: "evalsha" is the one command sent, the others
# ran inside it on the server.


async def test_get_is_one_get_and_get_entry_one_script(
    store: RedisStore, raw: aioredis.Redis
) -> None:
    await _load_scripts(store)
    await store.save("k", 1)
    before = await _commands(raw)
    await store.get("k")
    assert await _delta(raw, before) == {"get": 1}
    before = await _commands(raw)
    await store.get_entry("k")
    assert await _delta(raw, before) == {"evalsha": 1, "get": 1, "pttl": 1}


async def test_writes_are_one_command_each(store: RedisStore, raw: aioredis.Redis) -> None:
    await _load_scripts(store)
    version = await store.save("k", 1)
    before = await _commands(raw)
    version = await store.save("k", 2, if_version=version)
    assert await _delta(raw, before) == {"evalsha": 1, "get": 1, "set": 1}
    before = await _commands(raw)
    await store.save("new", 1, if_absent=True, ttl=10)
    assert await _delta(raw, before) == {"set": 1}
    before = await _commands(raw)
    await store.delete("k", if_version=version)
    assert await _delta(raw, before) == {"evalsha": 1, "get": 1, "del": 1}


async def test_big_batches_are_chunked_mget_mset_and_del(
    store: RedisStore, raw: aioredis.Redis
) -> None:
    keys = [f"k{i}" for i in range(2500)]
    before = await _commands(raw)
    await store.save_many(dict.fromkeys(keys, 1))
    assert await _delta(raw, before) == {"mset": 3}
    before = await _commands(raw)
    assert await store.get_many(keys) == [1] * 2500
    assert await _delta(raw, before) == {"mget": 3}
    before = await _commands(raw)
    assert await store.delete_many([*keys, "missing"]) == 2500
    assert await _delta(raw, before) == {"del": 3}


async def test_scan_uses_scan_with_match_never_keys(store: RedisStore, raw: aioredis.Redis) -> None:
    await store.save_many({f"k{i}": i for i in range(30)})
    before = await _commands(raw)
    found = [key async for key in store.scan(prefix="k1", batch_size=10)]
    delta = await _delta(raw, before)
    # SCAN may list a key twice while the server resizes its table (documented).
    assert set(found) == {"k1", *(f"k1{i}" for i in range(10))}
    assert delta.get("scan", 0) >= 1
    assert set(delta) == {"scan"}


# -- transactions ----------------------------------------------------------------------


async def test_transaction_reads_see_staged_writes_and_deletes(store: RedisStore) -> None:
    await store.save("gone", 1)
    async with store.transaction() as tx:
        version = await tx.save("new", {"v": 1})
        assert await tx.delete("gone") is True
        entry = await tx.get_entry("new")
        assert await tx.get("gone") is None
        assert await tx.delete("never") is False
    assert entry is not None
    assert (entry.value, entry.version) == ({"v": 1}, version)
    assert await store.get_many(["new", "gone"]) == [{"v": 1}, None]


async def test_a_conditional_transaction_watches_and_runs_multi_exec(
    store: RedisStore, raw: aioredis.Redis
) -> None:
    version = await store.save("a", 1)
    before = await _commands(raw)
    async with store.transaction() as tx:
        await tx.save("a", 2, if_version=version)
        await tx.save("b", 2)
    delta = await _delta(raw, before)
    assert {"watch", "multi", "exec"} <= set(delta)
    assert await store.get_many(["a", "b"]) == [2, 2]


async def test_a_write_between_staging_and_commit_aborts_the_transaction(
    store: RedisStore,
) -> None:
    version = await store.save("a", "original")

    async def interleaved() -> None:
        async with store.transaction() as tx:
            await tx.save("a", "from tx", if_version=version)
            await tx.save("b", "from tx")
            await store.save("a", "concurrent")

    with pytest.raises(ConflictError):
        await interleaved()
    assert await store.get_many(["a", "b"]) == ["concurrent", None]


async def test_a_create_between_staging_and_commit_raises_already_exists(
    store: RedisStore,
) -> None:
    async def interleaved() -> None:
        async with store.transaction() as tx:
            await tx.save("a", "from tx", if_absent=True)
            await store.save("a", "concurrent")

    with pytest.raises(AlreadyExistsError):
        await interleaved()
    assert await store.get("a") == "concurrent"


# -- lifecycle -------------------------------------------------------------------------


async def test_a_client_passed_in_is_used_and_never_closed(
    raw: aioredis.Redis, namespace: str
) -> None:
    async with RedisBackend(RedisSettings(prefix="mine"), client=raw) as backend:
        await backend.namespace(namespace).save("k", 1)
    assert await raw.ping() is True
    assert await raw.exists(f"mine:{namespace}:k") == 1


async def test_stores_of_a_closed_backend_refuse_calls(
    redis_service: ServiceEndpoint, namespace: str
) -> None:
    backend = RedisBackend(RedisSettings(url=redis_service.url))
    store = backend.namespace(namespace)
    await backend.open()
    await backend.aclose()
    with pytest.raises(StoreUnavailableError, match="closed"):
        await store.get("k")
    assert (await store.health()).ok is False


async def test_health_reports_the_server_version(store: RedisStore) -> None:
    health = await store.health()
    assert health.ok is True
    assert health.detail.startswith("redis ")


async def test_a_small_pool_queues_callers_instead_of_failing(
    redis_service: ServiceEndpoint, namespace: str
) -> None:
    settings = RedisSettings(url=redis_service.url, pool_size=2)
    async with RedisBackend(settings) as backend:
        store = backend.namespace(namespace)
        await store.save("k", "v")
        values = await asyncio.gather(*(store.get("k") for _ in range(64)))
        pool = backend.client.connection_pool
        assert values == ["v"] * 64
        assert len(pool._available_connections) + len(pool._in_use_connections) <= 2


async def test_a_unix_socket_url_works(private_redis: StartRedis, namespace: str) -> None:
    server = private_redis("--unixsocket", "redis.sock", "--unixsocketperm", "700")
    url = f"unix://{server.data_dir / 'redis.sock'}?db=0"
    async with RedisBackend(RedisSettings(url=url)) as backend:
        store = backend.namespace(namespace)
        await store.save("k", [1, 2])
        assert await store.get("k") == [1, 2]


# -- capabilities ----------------------------------------------------------------------


async def test_an_aof_always_server_is_durable(backend: RedisBackend, store: RedisStore) -> None:
    assert Capabilities.DURABLE in backend.capabilities
    assert Capabilities.DURABLE in store.capabilities
    assert Capabilities.QUERY not in store.capabilities


@pytest.mark.parametrize(
    "args",
    [("--appendonly", "no"), ("--appendfsync", "everysec"), ("--rename-command", "CONFIG", "")],
    ids=["no-aof", "everysec", "config-disabled"],
)
async def test_servers_that_may_lose_writes_are_not_durable(
    private_redis: StartRedis, args: tuple[str, ...], namespace: str
) -> None:
    server = private_redis(*args)
    async with RedisBackend(RedisSettings(url=server.url)) as backend:
        store = backend.namespace(namespace)
        await store.save("k", 1)
        assert Capabilities.DURABLE not in backend.capabilities
        assert Capabilities.DURABLE not in store.capabilities
        assert Capabilities.TTL | Capabilities.CAS in store.capabilities


async def test_a_store_made_before_open_learns_durability_at_open(
    redis_service: ServiceEndpoint, namespace: str
) -> None:
    backend = RedisBackend(RedisSettings(url=redis_service.url))
    store = backend.namespace(namespace)
    assert Capabilities.DURABLE not in store.capabilities
    async with backend:
        assert Capabilities.DURABLE in store.capabilities
