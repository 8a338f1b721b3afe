"""Plugin discovery through real entry points, clashes, blocking and bad hooks."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from polystore import (
    BackendNotFoundError,
    BackendSpec,
    Capabilities,
    ConfigurationWarning,
    PluginError,
    PluginManager,
    Polystore,
    RouteRequirementError,
    hookimpl,
)
from polystore.backends.memory import MemoryBackend, MemorySettings

PLUGIN_SOURCE = """
from polystore import BackendSpec, hookimpl
from polystore.backends.memory import CAPABILITIES, MemoryBackend, MemorySettings


@hookimpl
def polystore_register_backends(registry):
    registry.register(
        BackendSpec(
            name="{backend}",
            factory=MemoryBackend,
            settings_model=MemorySettings,
            capabilities=CAPABILITIES,
            description="test plugin",
        )
    )
"""


def install_distribution(root: Path, dist: str, entry_name: str, module: str, source: str) -> None:
    """Lay out a module and its .dist-info (METADATA + entry_points.txt) under ``root``."""
    (root / f"{module}.py").write_text(source)
    info = root / f"{dist.replace('-', '_')}-1.2.3.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.2.3\n")
    (info / "entry_points.txt").write_text(f"[polystore]\n{entry_name} = {module}\n")


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delenv("POLYSTORE_DISABLE_PLUGINS", raising=False)
    return tmp_path


def test_a_plugin_is_discovered_through_its_entry_point(site: Path) -> None:
    install_distribution(
        site, "acme-store", "acme", "acme_plugin", PLUGIN_SOURCE.format(backend="acme")
    )
    manager = PluginManager()

    spec = manager.backends.get("acme")

    assert spec.distribution == "acme-store"
    assert spec.plugin == "acme"
    assert spec.factory is MemoryBackend
    infos = {info.name: info for info in manager.plugins()}
    assert infos["acme"].version == "1.2.3"


def test_plugins_are_loaded_lazily_once_per_manager(site: Path) -> None:
    install_distribution(
        site, "lazy-store", "lazy", "lazy_plugin", PLUGIN_SOURCE.format(backend="lazy")
    )
    import sys

    manager = PluginManager()
    assert "lazy_plugin" not in sys.modules
    first = manager.backends
    assert "lazy_plugin" in sys.modules
    assert manager.backends is first


def test_two_plugins_registering_one_backend_name_clash(site: Path) -> None:
    install_distribution(
        site, "clash-one", "one", "clash_one", PLUGIN_SOURCE.format(backend="samename")
    )
    install_distribution(
        site, "clash-two", "two", "clash_two", PLUGIN_SOURCE.format(backend="samename")
    )

    with pytest.raises(PluginError, match=r"clash.*samename"):
        _ = PluginManager().backends


def test_a_plugin_clashing_with_a_builtin_backend_is_reported(site: Path) -> None:
    install_distribution(
        site, "fake-memory", "fakemem", "fake_memory", PLUGIN_SOURCE.format(backend="memory")
    )
    with pytest.raises(PluginError, match="'memory'"):
        _ = PluginManager().backends


def test_a_disabled_plugin_is_not_loaded(site: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    install_distribution(
        site, "off-store", "off", "off_plugin", PLUGIN_SOURCE.format(backend="off")
    )
    monkeypatch.setenv("POLYSTORE_DISABLE_PLUGINS", "off, other")
    manager = PluginManager()

    with pytest.warns(ConfigurationWarning, match="names plugin 'other', which is not installed"):
        assert "off" not in manager.backends
    assert "memory" in manager.backends
    assert manager.disabled == {"off", "other"}


def test_a_builtin_can_be_disabled_too(site: Path) -> None:
    manager = PluginManager(disabled=["memory"])
    assert "memory" not in manager.backends
    assert "sqlite" in manager.backends


def test_a_missing_backend_names_the_distribution_to_install(site: Path) -> None:
    manager = PluginManager(entry_points=False)
    with pytest.raises(BackendNotFoundError, match="pip install polystore-redis"):
        manager.backends.get("redis")
    with pytest.raises(BackendNotFoundError, match="entry-point group 'polystore'"):
        manager.backends.get("cassandra")


def test_a_misspelled_hook_is_reported(site: Path) -> None:
    source = textwrap.dedent(
        """
        from polystore import hookimpl

        @hookimpl
        def polystore_register_backend(registry):
            pass
        """
    )
    install_distribution(site, "typo-store", "typo", "typo_plugin", source)
    with pytest.raises(PluginError, match="polystore_register_backend"):
        _ = PluginManager().backends


def test_a_plugin_that_fails_to_import_names_itself(site: Path) -> None:
    install_distribution(site, "broken-store", "broken", "broken_plugin", "import no_such_mod\n")
    with pytest.raises(PluginError, match=r"broken.*broken-store"):
        _ = PluginManager().backends


def test_an_in_process_plugin_object_registers_through_the_same_hook() -> None:
    class Plugin:
        __name__ = "inline"

        @hookimpl
        def polystore_register_backends(self, registry) -> None:  # type: ignore[no-untyped-def]
            registry.register(
                BackendSpec("inline", MemoryBackend, MemorySettings, Capabilities.TTL)
            )

    manager = PluginManager(entry_points=False, plugins=[Plugin()])
    assert manager.backends.get("inline").plugin == "inline"


def test_wrap_store_hook_wraps_every_route() -> None:
    seen: list[str] = []

    class Tracing:
        __name__ = "tracing"

        @hookimpl
        def polystore_wrap_store(self, store, route):  # type: ignore[no-untyped-def]
            seen.append(route)
            return store

    manager = PluginManager(entry_points=False, plugins=[Tracing()])
    import asyncio

    async def start() -> None:
        config = {"backends": {"m": {"plugin": "memory"}}, "routes": {"a": {"backend": "m"}}}
        async with Polystore.from_config(config, plugins=manager) as ps:
            assert ps.route("a").name == "m/a"

    asyncio.run(start())
    assert seen == ["a"]


@pytest.mark.asyncio
async def test_a_route_requirement_failure_names_route_backend_and_capability() -> None:
    config = {
        "backends": {"mem": {"plugin": "memory"}},
        "routes": {"transactions": {"backend": "mem"}},
    }
    ps = Polystore.from_config(config, plugins=PluginManager(entry_points=False))
    with pytest.raises(RouteRequirementError) as info:
        await ps.start()
    assert info.value.route == "transactions"
    assert info.value.missing == ("durable",)
    assert "'mem'" in str(info.value)
    assert "durable" in str(info.value)
