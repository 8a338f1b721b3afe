"""Sharded routes from settings: validation, the router, route descriptions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from polystore import Polystore
from polystore.errors import ConfigurationError, RouteRequirementError, ValidationError
from polystore.models import UserProfile
from polystore.settings import load_settings
from polystore.sharding import RangeShardStrategy, ShardedStore
from polystore.types import Capabilities

pytestmark = pytest.mark.asyncio


def config(tmp_path: Path, **route: Any) -> dict[str, Any]:
    return {
        "backends": {
            "m1": {"plugin": "memory"},
            "m2": {"plugin": "memory"},
            "lite": {"plugin": "sqlite", "path": str(tmp_path / "lite.db")},
        },
        "routes": {"profiles": {"shards": ["lite", "m1", "m2"], **route}},
    }


async def test_a_sharded_route_spreads_its_keys_over_its_backends(tmp_path: Path) -> None:
    async with Polystore.from_config(config(tmp_path, requires=["query"])) as ps:
        for i in range(60):
            await ps.profiles.save(UserProfile(user_id=f"u{i}", display_name=f"user {i}"))
        sharded = ps.sharded("profiles")
        owners = {sharded.shard_for(f"u{i}") for i in range(60)}
        found = await ps.route("profiles").find({"display_name": "user 7"})
        info = ps.routes["profiles"]

    assert owners == {"lite", "m1", "m2"}
    assert [e.key for e in found] == ["u7"]
    assert info.shards == ("lite", "m1", "m2")
    assert info.strategy == "hash"
    assert info.plugin == "sqlite,memory"
    assert info.namespace == "profiles"
    assert Capabilities.DURABLE not in info.capabilities


async def test_requires_is_checked_against_the_intersection(tmp_path: Path) -> None:
    ps = Polystore.from_config(config(tmp_path, requires=["durable"]))
    with pytest.raises(RouteRequirementError, match="durable") as caught:
        await ps.start()
    assert "m1 (memory)" in str(caught.value)


async def test_range_routes_take_empty_strings_as_open_ends(tmp_path: Path) -> None:
    ranges = [["", "h", "lite"], ["h", "p", "m1"], ["p", "", "m2"]]
    async with Polystore.from_config(config(tmp_path, strategy="range", ranges=ranges)) as ps:
        sharded = ps.sharded("profiles")
        assert isinstance(sharded.strategy, RangeShardStrategy)
        assert [sharded.shard_for(k) for k in ("apple", "house", "zoo")] == ["lite", "m1", "m2"]


async def test_the_shard_map_is_stored_in_the_first_shards_backend(tmp_path: Path) -> None:
    async with Polystore.from_config(config(tmp_path)) as ps:
        await ps.route("profiles").save("k", 1)
        sharded = ps.sharded("profiles")
        assert sharded.topology is not None
        stored = await sharded.topology.store.get(sharded.topology.key)
    assert isinstance(stored, dict)
    assert stored["current"] == {"kind": "hash", "shards": ["lite", "m1", "m2"], "weights": {}}
    assert stored["previous"] is None


@pytest.mark.parametrize(
    ("route", "message"),
    [
        ({"backend": "m1", "shards": ["m1", "m2"]}, "exactly one of"),
        ({"requires": ["ttl"]}, "exactly one of"),
        ({"shards": ["m1", "m1"]}, "repeat"),
        ({"shards": ["m1", "m2"], "strategy": "range"}, "needs ranges"),
        ({"shards": ["m1"], "ranges": [["a", "", "m1"]]}, 'strategy = "range"'),
        ({"shards": ["m1"], "weights": {"m9": 2.0}}, "not in shards"),
        ({"shards": ["m1"], "weights": {"m1": 0}}, "> 0"),
        ({"backend": "m1", "strategy": "range"}, "need shards"),
        ({"shards": ["m1"], "strategy": "modulo"}, "strategy"),
    ],
)
async def test_bad_sharding_settings_are_configuration_errors(
    route: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigurationError, match=message):
        load_settings({"backends": {"m1": {"plugin": "memory"}}, "routes": {"r": route}})


async def test_a_shard_that_is_not_a_configured_backend_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="'m9' is not configured"):
        Polystore.from_config(config(tmp_path, shards=["m1", "m9"]))


async def test_overlapping_ranges_fail_at_start(tmp_path: Path) -> None:
    ranges = [["", "m", "lite"], ["k", "", "m1"]]
    ps = Polystore.from_config(config(tmp_path, strategy="range", ranges=ranges))
    with pytest.raises(ConfigurationError, match="overlap"):
        await ps.start()


async def test_a_plain_route_is_not_sharded(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    cfg["routes"]["plain"] = {"backend": "m1"}
    async with Polystore.from_config(cfg) as ps:
        with pytest.raises(ConfigurationError, match="not sharded"):
            ps.sharded("plain")
        assert isinstance(ps.sharded("profiles"), ShardedStore)
        with pytest.raises(ValidationError):
            await ps.route("profiles").save("", 1)
