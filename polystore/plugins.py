"""A per-instance plugin manager: built-ins plus lazily loaded entry points."""

from __future__ import annotations

import difflib
import importlib.metadata
import os
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import pluggy

from polystore import hookspecs
from polystore.config_env import caller_stacklevel
from polystore.errors import ConfigurationWarning, PluginError
from polystore.protocol import DataStore
from polystore.registry import BackendRegistry
from polystore.replication.merges import MergeRegistry

__all__ = ["DISABLE_ENV", "PluginInfo", "PluginManager"]

DISABLE_ENV = "POLYSTORE_DISABLE_PLUGINS"
"""Comma-separated plugin (entry-point) names never to load."""

BUILTIN_PLUGINS = {
    "memory": "polystore.backends.memory",
    "sqlite": "polystore.backends.sqlite",
}


@dataclass(frozen=True)
class PluginInfo:
    """A loaded plugin and where it came from."""

    name: str
    distribution: str
    version: str


class PluginManager:
    """Loads plugins once, on first use, and exposes what they registered.

    Args:
        entry_points: Load external plugins from the ``polystore`` entry-point group.
        disabled: Plugin names to block; defaults to ``POLYSTORE_DISABLE_PLUGINS``.
        plugins: Extra plugin objects to register (for applications and tests).
    """

    def __init__(
        self,
        *,
        entry_points: bool = True,
        disabled: Iterable[str] | None = None,
        plugins: Iterable[object] = (),
    ) -> None:
        self._disabled_by = "disabled="
        if disabled is None:
            self._disabled_by = DISABLE_ENV
            disabled = (n for n in os.environ.get(DISABLE_ENV, "").split(","))
        self.disabled = frozenset(n.strip() for n in disabled if n.strip())
        self._use_entry_points = entry_points
        self._extra = list(plugins)
        self._pm: pluggy.PluginManager | None = None
        self._backends: BackendRegistry | None = None
        self._merge_functions: MergeRegistry | None = None
        self._infos: dict[str, PluginInfo] = {}

    @property
    def hooks(self) -> pluggy.PluginManager:
        """The underlying pluggy manager (plugins loaded)."""
        if self._pm is None:
            self._pm = self._load()
        return self._pm

    @property
    def backends(self) -> BackendRegistry:
        """Backend specifications registered by all plugins."""
        if self._backends is None:
            registry = BackendRegistry()
            self._call_registering("polystore_register_backends", registry)
            self._backends = registry
        return self._backends

    @property
    def merge_functions(self) -> MergeRegistry:
        """Vector-clock merge functions registered by all plugins, by name."""
        if self._merge_functions is None:
            registry = MergeRegistry()
            self._call_registering("polystore_register_merge_functions", registry)
            self._merge_functions = registry
        return self._merge_functions

    def plugins(self) -> list[PluginInfo]:
        """Loaded plugins, by name."""
        _ = self.hooks
        return [self._infos[name] for name in sorted(self._infos)]

    def wrap_store(self, store: DataStore, route: str) -> DataStore:
        """Apply every ``polystore_wrap_store`` implementation in turn."""
        for impl in reversed(self.hooks.hook.polystore_wrap_store.get_hookimpls()):
            wrapped = impl.function(store=store, route=route)
            if wrapped is not None:
                if not isinstance(wrapped, DataStore):
                    raise PluginError(
                        f"plugin {impl.plugin_name!r}: polystore_wrap_store returned "
                        f"{type(wrapped).__name__}, which is not a DataStore"
                    )
                store = wrapped
        return store

    # -- loading ----------------------------------------------------------------------

    def _load(self) -> pluggy.PluginManager:
        pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
        pm.add_hookspecs(hookspecs)
        for name in self.disabled:
            pm.set_blocked(name)
        for name, module_name in BUILTIN_PLUGINS.items():
            if pm.is_blocked(name):
                continue
            module = importlib.import_module(module_name)
            self._register(pm, module, name, "polystore-sdk")
        for index, plugin in enumerate(self._extra):
            name = getattr(plugin, "__name__", None) or f"plugin-{index}"
            self._register(pm, plugin, name, "")
        if self._use_entry_points:
            self._load_entry_points(pm)
        self._warn_about_unknown_disabled()
        try:
            pm.check_pending()
        except pluggy.PluginValidationError as exc:
            raise PluginError(f"plugin {exc.plugin!r} implements an unknown hook: {exc}") from exc
        return pm

    def _warn_about_unknown_disabled(self) -> None:
        """Warn about blocked names that no plugin has (a misspelling blocks nothing)."""
        known = set(BUILTIN_PLUGINS) | set(self._infos)
        known |= {ep.name for ep in importlib.metadata.entry_points(group=hookspecs.PROJECT_NAME)}
        for name in sorted(self.disabled - known):
            close = difflib.get_close_matches(name, sorted(known), n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            warnings.warn(
                ConfigurationWarning(
                    f"{self._disabled_by} names plugin {name!r}, which is not installed, so it "
                    f"blocks nothing; {hint}known plugins: {', '.join(sorted(known))}"
                ),
                stacklevel=caller_stacklevel(),
            )

    def _load_entry_points(self, pm: pluggy.PluginManager) -> None:
        for ep in importlib.metadata.entry_points(group=hookspecs.PROJECT_NAME):
            if pm.is_blocked(ep.name):
                continue
            dist = ep.dist
            dist_name = dist.metadata["Name"] if dist is not None else ""
            try:
                plugin = ep.load()
            except ImportError as exc:
                raise PluginError(
                    f"plugin {ep.name!r} from distribution {dist_name or '?'} failed to import "
                    f"({exc}); reinstall it with its extras, or block it with "
                    f"{DISABLE_ENV}={ep.name}"
                ) from exc
            version = dist.version if dist is not None else ""
            self._register(pm, plugin, ep.name, dist_name, version)

    def _register(
        self,
        pm: pluggy.PluginManager,
        plugin: object,
        name: str,
        distribution: str,
        version: str = "",
    ) -> None:
        if pm.get_plugin(name) is not None or name in self._infos:
            raise PluginError(
                f"two plugins are named {name!r} (distribution {distribution or '?'} and "
                f"{self._infos[name].distribution if name in self._infos else '?'})"
            )
        try:
            pm.register(plugin, name=name)
        except pluggy.PluginValidationError as exc:
            raise PluginError(f"plugin {name!r} is invalid: {exc}") from exc
        if not version and distribution == "polystore-sdk":
            version = _version("polystore-sdk")
        self._infos[name] = PluginInfo(name=name, distribution=distribution, version=version)

    def _call_registering(self, hook_name: str, registry: Any) -> None:
        hook = getattr(self.hooks.hook, hook_name)
        for impl in reversed(hook.get_hookimpls()):
            info = self._infos.get(impl.plugin_name)
            dist = info.distribution if info is not None else ""
            target = (
                registry.scoped(impl.plugin_name, dist) if hasattr(registry, "scoped") else registry
            )
            impl.function(registry=target)


def _version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return ""
