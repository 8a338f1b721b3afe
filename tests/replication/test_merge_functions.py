"""Merge functions registered by name: from Python, from a plugin hook, and their errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from polystore import Polystore, hookimpl
from polystore.errors import ConfigurationError, PluginError
from polystore.plugins import PluginManager
from polystore.replication import VectorClock
from polystore.spi import MergeRegistry
from polystore.types import JSONValue

pytestmark = pytest.mark.asyncio

REPLICAS = ("lite1", "lite2", "lite3")


def cart_union(values: list[JSONValue]) -> JSONValue:
    """The items of every concurrent cart, once each."""
    items: set[str] = set()
    for value in values:
        assert isinstance(value, dict)
        cart_items = value["items"]
        assert isinstance(cart_items, list)
        items.update(str(item) for item in cart_items)
    merged: list[JSONValue] = [*sorted(items)]
    return {"items": merged}


def config(tmp_path: Path, merge: str) -> dict[str, Any]:
    """Three SQLite replicas; two Polystore instances on it are two nodes."""
    return {
        "backends": {
            name: {"plugin": "sqlite", "path": str(tmp_path / f"{name}.db")} for name in REPLICAS
        },
        "routes": {
            "carts": {
                "replicas": list(REPLICAS),
                "write_quorum": 3,
                "resolver": "vector",
                "merge": merge,
            }
        },
    }


class UnionPlugin:
    """A plugin that registers ``cart_union`` through the hook."""

    __name__ = "carts-plugin"

    @hookimpl
    def polystore_register_merge_functions(self, registry: MergeRegistry) -> None:
        registry.register("cart_union", cart_union)


def plugin_manager(*plugins: object) -> PluginManager:
    return PluginManager(entry_points=False, plugins=plugins)


async def concurrent_carts(phone: Polystore, laptop: Polystore) -> tuple[Any, Any]:
    """Two blind writes of one key from two nodes, then a read from each."""
    async with phone, laptop:
        await phone.route("carts").save("c1", {"items": ["apple"]})
        await laptop.route("carts").save("c1", {"items": ["pear"]})
        return await phone.route("carts").get("c1"), await laptop.route("carts").get("c1")


async def test_a_merge_function_registered_from_python_merges_concurrent_writes(
    tmp_path: Path,
) -> None:
    settings = config(tmp_path, "cart_union")
    phone = Polystore.from_config(settings, merge_functions={"cart_union": cart_union})
    laptop = Polystore.from_config(settings, merge_functions={"cart_union": cart_union})

    seen_by_phone, seen_by_laptop = await concurrent_carts(phone, laptop)

    assert seen_by_phone == {"items": ["apple", "pear"]}
    assert seen_by_laptop == {"items": ["apple", "pear"]}


async def test_a_merge_function_registered_by_a_plugin_merges_concurrent_writes(
    tmp_path: Path,
) -> None:
    settings = config(tmp_path, "cart_union")
    phone = Polystore.from_config(settings, plugins=plugin_manager(UnionPlugin()))
    laptop = Polystore.from_config(settings, plugins=plugin_manager(UnionPlugin()))

    seen_by_phone, seen_by_laptop = await concurrent_carts(phone, laptop)

    assert seen_by_phone == {"items": ["apple", "pear"]}
    assert seen_by_laptop == {"items": ["apple", "pear"]}


async def test_the_route_uses_the_function_registered_under_its_name(tmp_path: Path) -> None:
    manager = plugin_manager(UnionPlugin())

    async with Polystore.from_config(config(tmp_path, "cart_union"), plugins=manager) as ps:
        resolver = ps.replicated("carts").resolver

    assert isinstance(resolver, VectorClock)
    assert resolver.merge is cart_union
    assert manager.merge_functions.owner("cart_union") == "carts-plugin"


async def test_an_import_path_still_names_a_merge_function(tmp_path: Path) -> None:
    async with Polystore.from_config(config(tmp_path, f"{__name__}:cart_union")) as ps:
        resolver = ps.replicated("carts").resolver

    assert isinstance(resolver, VectorClock)
    assert resolver.merge is cart_union


async def test_an_unknown_merge_name_fails_start_up_with_a_suggestion_before_any_io(
    tmp_path: Path,
) -> None:
    ps = Polystore.from_config(
        config(tmp_path, "cart_unoin"), merge_functions={"cart_union": cart_union}
    )

    with pytest.raises(ConfigurationError) as caught:
        await ps.start()

    message = str(caught.value)
    assert "route 'carts'" in message
    assert "'cart_unoin'" in message
    assert "did you mean 'cart_union'?" in message
    assert not any((tmp_path / f"{name}.db").exists() for name in REPLICAS)


async def test_two_plugins_registering_one_merge_name_clash(tmp_path: Path) -> None:
    class Other(UnionPlugin):
        __name__ = "other-plugin"

    ps = Polystore.from_config(
        config(tmp_path, "cart_union"), plugins=plugin_manager(UnionPlugin(), Other())
    )

    with pytest.raises(PluginError, match="clash") as caught:
        await ps.start()

    assert "carts-plugin" in str(caught.value)
    assert "other-plugin" in str(caught.value)
    assert not any((tmp_path / f"{name}.db").exists() for name in REPLICAS)


async def test_an_application_function_clashing_with_a_plugin_one_is_refused(
    tmp_path: Path,
) -> None:
    ps = Polystore.from_config(
        config(tmp_path, "cart_union"),
        plugins=plugin_manager(UnionPlugin()),
        merge_functions={"cart_union": max},
    )

    with pytest.raises(PluginError, match=r"clash.*carts-plugin.*application"):
        await ps.start()


async def test_a_merge_function_that_is_not_callable_is_refused_at_once(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="not a callable"):
        Polystore.from_config(
            config(tmp_path, "cart_union"),
            merge_functions={"cart_union": "cart_union"},  # type: ignore[dict-item]
        )


async def test_a_plugin_registering_a_malformed_name_is_reported() -> None:
    class Bad:
        __name__ = "bad-plugin"

        @hookimpl
        def polystore_register_merge_functions(self, registry: MergeRegistry) -> None:
            registry.register("pkg.mod:fn", cart_union)

    with pytest.raises(PluginError, match=r"bad-plugin.*not valid"):
        _ = plugin_manager(Bad()).merge_functions
