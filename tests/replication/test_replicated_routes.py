"""Replicated routes from settings: validation, the router, route descriptions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from polystore import Polystore
from polystore.errors import ConfigurationError, RouteRequirementError
from polystore.replication import LastWriteWins, ReplicatedStore, VectorClock
from polystore.settings import RouteConfig
from polystore.types import Capabilities

pytestmark = pytest.mark.asyncio


def config(tmp_path: Path, **route: Any) -> dict[str, Any]:
    return {
        "backends": {
            "m1": {"plugin": "memory"},
            "m2": {"plugin": "memory"},
            "lite": {"plugin": "sqlite", "path": str(tmp_path / "lite.db")},
        },
        "routes": {"carts": {"replicas": ["lite", "m1", "m2"], **route}},
    }


async def test_a_replicated_route_copies_every_write_to_its_backends(tmp_path: Path) -> None:
    async with Polystore.from_config(config(tmp_path, write_quorum=3)) as ps:
        await ps.route("carts").save("c1", {"items": ["apple"]})
        copies = [await ps.backends[b].namespace("carts").get("c1") for b in ("lite", "m1", "m2")]
        value = await ps.route("carts").get("c1")
        store = ps.replicated("carts")
        info = ps.routes["carts"]

    assert value == {"items": ["apple"]}
    assert all(isinstance(copy, dict) and "~polystore" in copy for copy in copies)
    assert isinstance(store.resolver, LastWriteWins)
    assert (store.write_quorum, store.read_quorum) == (3, 2)
    assert info.replicas == ("lite", "m1", "m2")
    assert info.plugin == "sqlite,memory"
    assert Capabilities.CAS not in info.capabilities
    assert Capabilities.TTL in info.capabilities


async def test_repair_runs_through_the_router(tmp_path: Path) -> None:
    async with Polystore.from_config(config(tmp_path)) as ps:
        await ps.route("carts").save("c1", 1)
        await ps.backends["m2"].namespace("carts").delete("c1")  # a replica lost it
        report = await ps.replicated("carts").repair()
        restored = await ps.backends["m2"].namespace("carts").exists("c1")

    assert (report.scanned, report.repaired) == (1, 1)
    assert restored


async def test_the_vector_resolver_loads_its_merge_function_by_name(tmp_path: Path) -> None:
    settings = config(tmp_path, resolver="vector", merge="builtins:max")
    async with Polystore.from_config(settings) as ps:
        store = ps.replicated("carts")

    assert isinstance(store.resolver, VectorClock)
    assert store.resolver.merge is max


async def test_a_merge_function_that_cannot_be_imported_fails_start_up(tmp_path: Path) -> None:
    settings = config(tmp_path, resolver="vector", merge="no_such_module_x:merge")
    with pytest.raises(ConfigurationError, match="no_such_module_x"):
        async with Polystore.from_config(settings):
            pass


@pytest.mark.parametrize("capability", ["cas", "transactions", "query"])
async def test_requires_what_replication_cannot_give_fails_start_up(
    tmp_path: Path, capability: str
) -> None:
    ps = Polystore.from_config(config(tmp_path, requires=[capability]))
    with pytest.raises(RouteRequirementError, match=capability) as caught:
        await ps.start()
    assert caught.value.route == "carts"
    assert "docs/replication.md" in str(caught.value)


async def test_a_route_that_is_not_replicated_has_no_replicated_store(tmp_path: Path) -> None:
    settings = config(tmp_path)
    settings["routes"]["plain"] = {"backend": "m1"}
    async with Polystore.from_config(settings) as ps:
        with pytest.raises(ConfigurationError, match="not replicated"):
            ps.replicated("plain")
        assert not isinstance(ps.route("plain"), ReplicatedStore)


@pytest.mark.parametrize(
    ("route", "message"),
    [
        ({"replicas": ["a", "b"], "backend": "a"}, "exactly one"),
        ({"replicas": ["a", "a"]}, "repeat"),
        ({"replicas": ["a", "b"], "write_quorum": 3}, "write_quorum = 3"),
        ({"replicas": ["a", "b"], "read_quorum": 0}, "greater than or equal"),
        ({"replicas": ["a", "b"], "resolver": "vector"}, "needs merge"),
        ({"replicas": ["a", "b"], "merge": "m:f"}, "needs resolver"),
        ({"replicas": ["a", "b"], "resolver": "vector", "merge": "not a path"}, "pattern"),
        ({"backend": "a", "write_quorum": 2}, "need replicas"),
        ({"replicas": ["a"], "resolver": "crdt"}, "lww"),
    ],
)
async def test_bad_replication_settings_are_refused(route: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RouteConfig(**route)


async def test_a_replica_naming_an_unknown_backend_is_refused(tmp_path: Path) -> None:
    settings = config(tmp_path)
    settings["routes"]["carts"]["replicas"] = ["lite", "m1", "m3"]
    with pytest.raises(ConfigurationError, match="m3"):
        Polystore.from_config(settings)
