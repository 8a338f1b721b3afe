"""Pure logic of the Redis backend: key layout, glob escaping, settings, error mapping."""

from __future__ import annotations

import pydantic
import pytest
from polystore_redis import RedisBackend, RedisErrors, RedisSettings, RedisStore
from polystore_redis.keys import KeyLayout, escape_glob, fixed_hash_tag, group_by_slot
from polystore_redis.packing import HIREDIS_PACKING, HiredisConnection
from polystore_redis.scripts import ttl_to_ms
from redis import exceptions as rx
from redis.asyncio.connection import Connection
from redis.crc import key_slot

from polystore import (
    ConflictError,
    PluginManager,
    StoreError,
    StoreTimeoutError,
    StoreUnavailableError,
    UnknownOutcomeError,
    ValidationError,
)

PASSWORD = "hunter2-secret"


# -- key layout ------------------------------------------------------------------------


def test_every_glob_metacharacter_is_escaped() -> None:
    assert escape_glob("a*b?c[d]e\\f") == "a\\*b\\?c\\[d\\]e\\\\f"
    assert escape_glob("plain:{tag}-%_") == "plain:{tag}-%_"


def test_keys_live_under_prefix_and_namespace() -> None:
    layout = KeyLayout("app", "sessions", hash_tag=False)
    assert layout.key("s1") == "app:sessions:s1"
    assert layout.strip(b"app:sessions:s1") == "s1"


def test_scan_pattern_escapes_prefix_namespace_and_key_prefix() -> None:
    layout = KeyLayout("p*[", "ns", hash_tag=False)
    assert layout.pattern("k?") == "p\\*\\[:ns:k\\?*"


def test_colons_in_a_namespace_cannot_collide_with_keys_of_another() -> None:
    outer = KeyLayout("p", "a", hash_tag=False)
    inner = KeyLayout("p", "a:b", hash_tag=False)
    assert outer.key("b:c") != inner.key("c")
    assert not inner.base.startswith(outer.base)
    assert not outer.base.startswith(inner.base)
    assert outer.strip(inner.key("c")) is None


def test_strip_refuses_keys_of_other_namespaces_and_bad_utf8() -> None:
    layout = KeyLayout("p", "ns", hash_tag=False)
    assert layout.strip(b"p:other:k") is None
    assert layout.strip(b"p:ns:") is None
    assert layout.strip(b"p:ns:\xff") is None


def test_hash_tag_puts_the_whole_namespace_in_one_slot() -> None:
    layout = KeyLayout("polystore", "sessions", hash_tag=True)
    slots = {key_slot(layout.key(f"k{i}").encode()) for i in range(200)}
    assert layout.base == "polystore:{sessions}:"
    assert layout.single_slot is True
    assert len(slots) == 1


@pytest.mark.parametrize(
    ("base", "fixed"),
    [
        ("p:{ns}:", True),
        ("p:ns:", False),
        ("a{}b:{ns}:", False),  # an empty tag: Redis hashes the whole key
        ("x{y}:ns:", True),
        ("x{:ns:", False),
    ],
)
def test_fixed_hash_tag_follows_redis_rules(base: str, fixed: bool) -> None:
    slots = {key_slot((base + f"key{i}").encode()) for i in range(50)}
    assert fixed_hash_tag(base) is fixed
    assert (len(slots) == 1) is fixed


def test_group_by_slot_keeps_order_within_each_slot() -> None:
    keys = [f"k{i}" for i in range(100)]
    groups = group_by_slot(keys)
    assert sorted(k for group in groups.values() for k in group) == sorted(keys)
    for slot, group in groups.items():
        assert all(key_slot(k.encode()) == slot for k in group)
        assert group == sorted(group, key=keys.index)


def test_ttl_becomes_whole_milliseconds_rounded_up() -> None:
    assert ttl_to_ms(0.4) == 400
    assert ttl_to_ms(0.0001) == 1
    assert ttl_to_ms(1.0005) == 1001


# -- settings --------------------------------------------------------------------------


def test_settings_reject_unknown_options() -> None:
    with pytest.raises(pydantic.ValidationError):
        RedisSettings.model_validate({"plugin": "redis", "urll": "redis://x"})


def test_settings_reject_other_url_schemes_without_showing_the_password() -> None:
    with pytest.raises(pydantic.ValidationError) as info:
        RedisSettings(url=f"http://user:{PASSWORD}@host:1/")
    assert "redis://" in str(info.value)
    assert PASSWORD not in str(info.value)


def test_settings_repr_and_dump_hide_the_password() -> None:
    settings = RedisSettings(url=f"redis://:{PASSWORD}@127.0.0.1:6379/0")
    assert PASSWORD not in repr(settings)
    assert PASSWORD not in str(settings.model_dump())
    assert PASSWORD not in settings.model_dump_json()
    assert settings.redacted_url() == "redis://:***@127.0.0.1:6379/0"


def test_tls_options_need_a_rediss_url() -> None:
    with pytest.raises(pydantic.ValidationError, match="rediss://"):
        RedisSettings(url="redis://h:1/0", tls={"ca_file": "/ca.pem"})
    settings = RedisSettings(url="rediss://h:1/0", tls={"ca_file": "/ca.pem"})
    assert settings.tls.verify is True
    assert settings.uses_tls is True


def test_tls_options_reach_the_driver_with_verification_on() -> None:
    settings = RedisSettings(url="rediss://h:1/0", tls={"ca_file": "/ca.pem", "cert_file": "/c"})
    kwargs = RedisBackend(settings).client.connection_pool.connection_kwargs
    assert kwargs["ssl_ca_certs"] == "/ca.pem"
    assert kwargs["ssl_certfile"] == "/c"
    assert kwargs["ssl_cert_reqs"] == "required"
    assert kwargs["ssl_check_hostname"] is True


def test_the_per_call_timeout_becomes_the_socket_timeouts() -> None:
    kwargs = RedisBackend(RedisSettings(timeout=0.75)).client.connection_pool.connection_kwargs
    assert kwargs["socket_timeout"] == 0.75
    assert kwargs["socket_connect_timeout"] == 0.75
    assert kwargs["retry"].get_retries() == 0


def test_a_cluster_url_selects_redis_cluster_with_hash_tags() -> None:
    settings = RedisSettings(url="redis+cluster://127.0.0.1:7000")
    backend = RedisBackend(settings)
    assert settings.is_cluster is True
    assert settings.driver_url() == "redis://127.0.0.1:7000"
    assert backend.is_cluster is True
    assert backend.hash_tag_namespaces is True
    assert RedisBackend(RedisSettings()).hash_tag_namespaces is False


def test_a_cluster_cannot_use_a_unix_socket() -> None:
    with pytest.raises(pydantic.ValidationError, match="unix"):
        RedisSettings(url="unix:///tmp/redis.sock", cluster=True)


@pytest.mark.parametrize("prefix", ["", "a\x00b", "x" * 300])
def test_bad_prefixes_are_rejected(prefix: str) -> None:
    with pytest.raises(pydantic.ValidationError):
        RedisSettings(prefix=prefix)


def test_backend_repr_shows_only_the_redacted_url() -> None:
    backend = RedisBackend(RedisSettings(url=f"redis://user:{PASSWORD}@127.0.0.1:1/0"))
    store = backend.namespace("ns")
    assert PASSWORD not in repr(backend)
    assert "redis://user:***@127.0.0.1:1/0" in repr(backend)
    assert PASSWORD not in repr(store)
    assert PASSWORD not in repr(backend.client)
    assert isinstance(store, RedisStore)


def test_the_plugin_registers_through_its_entry_point() -> None:
    spec = PluginManager().backends.get("redis")
    backend = spec.build({"plugin": "redis", "url": "redis://127.0.0.1:1/0"}, instance_name="c")
    assert spec.settings_model is RedisSettings
    assert spec.distribution == "polystore-redis"
    assert isinstance(backend, RedisBackend)
    assert backend.name == "c"


# -- error mapping ---------------------------------------------------------------------

REFUSED = rx.ConnectionError("Error 111 connecting to 127.0.0.1:1. Connection refused.")
CLOSED = rx.ConnectionError("Connection closed by server.")
READ_TIMEOUT = rx.TimeoutError("Timeout reading from 127.0.0.1:1")


@pytest.mark.parametrize(
    ("exc", "write", "expected"),
    [
        (REFUSED, False, StoreUnavailableError),
        (REFUSED, True, StoreUnavailableError),
        (CLOSED, False, StoreUnavailableError),
        (CLOSED, True, UnknownOutcomeError),
        (READ_TIMEOUT, False, StoreTimeoutError),
        (READ_TIMEOUT, True, UnknownOutcomeError),
        (rx.TimeoutError("Timeout connecting to server"), True, StoreTimeoutError),
        (rx.ConnectionError("No connection available."), True, StoreUnavailableError),
        (rx.AuthenticationError("invalid password"), True, StoreUnavailableError),
        (rx.BusyLoadingError("Redis is loading"), True, StoreUnavailableError),
        (rx.ResponseError("LOADING Redis is loading the dataset"), True, StoreUnavailableError),
        (
            rx.ReadOnlyError("READONLY You can't write against a replica"),
            True,
            StoreUnavailableError,
        ),
        (rx.ClusterDownError("CLUSTERDOWN The cluster is down"), False, StoreUnavailableError),
        (rx.WatchError("Watched variable changed."), True, ConflictError),
        (rx.DataError("Invalid input"), True, ValidationError),
        (rx.ResponseError("WRONGTYPE Operation against a key"), False, StoreError),
    ],
    ids=repr,
)
def test_driver_errors_translate_by_kind_and_phase(
    exc: Exception, write: bool, expected: type[StoreError]
) -> None:
    error = RedisErrors("redis/ns", "save", "k", write=write).translate(exc)
    assert type(error) is expected
    assert (error.backend, error.operation, error.key) == ("redis/ns", "save", "k")


def test_redis_errors_chains_the_driver_exception() -> None:
    with (
        pytest.raises(UnknownOutcomeError) as info,
        RedisErrors("redis/ns", "save", "k", write=True),
    ):
        raise CLOSED
    assert info.value.__cause__ is CLOSED
    assert "may or may not" in str(info.value)


def test_redis_errors_redacts_urls_in_driver_messages() -> None:
    leak = rx.ConnectionError(f"cannot reach redis://:{PASSWORD}@host:1")
    with pytest.raises(StoreUnavailableError) as info, RedisErrors("redis/ns", "get", "k"):
        raise leak
    assert PASSWORD not in str(info.value)


# -- hiredis packing -------------------------------------------------------------------


@pytest.mark.skipif(not HIREDIS_PACKING, reason="hiredis is not installed")
@pytest.mark.parametrize(
    "command",
    [
        ("GET", "polystore:ns:k"),
        ("SET", "k", b"0123456789abcdef{}", "PX", 400),
        ("MSET", "ключ", b"\x00\xff", "k2", b"v" * 10_000),
        ("CONFIG GET", "append*"),
        (b"CONFIG GET", b"append*"),
    ],
    ids=repr,
)
def test_hiredis_packing_produces_the_bytes_redis_py_would(command: tuple[object, ...]) -> None:
    expected = b"".join(Connection().pack_command(*command))
    assert b"".join(HiredisConnection().pack_command(*command)) == expected


@pytest.mark.skipif(not HIREDIS_PACKING, reason="hiredis is not installed")
def test_hiredis_packing_rejects_what_redis_py_rejects() -> None:
    with pytest.raises(rx.DataError):
        HiredisConnection().pack_command("SET", "k", object())


def test_the_public_api_is_pinned() -> None:
    import polystore_redis

    assert polystore_redis.__all__ == [
        "RedisBackend",
        "RedisErrors",
        "RedisSettings",
        "RedisStore",
        "RedisTLSSettings",
    ]
    assert all(hasattr(polystore_redis, name) for name in polystore_redis.__all__)
