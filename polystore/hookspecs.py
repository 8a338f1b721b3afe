"""Hook specifications. Hooks are synchronous and register things into registries.

A plugin is a module or object with functions marked ``@hookimpl``::

    from polystore import hookimpl, BackendSpec

    @hookimpl
    def polystore_register_backends(registry):
        registry.register(BackendSpec(name="mystore", factory=..., settings_model=...,
                                      capabilities=...))

and an entry point in the group ``polystore`` that names it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from polystore.protocol import DataStore
    from polystore.registry import BackendRegistry
    from polystore.replication.merges import MergeRegistry

__all__ = ["PROJECT_NAME", "hookimpl", "hookspec"]

PROJECT_NAME = "polystore"
"""The pluggy project name and the entry-point group."""

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@hookspec
def polystore_register_backends(registry: BackendRegistry) -> None:
    """Register backend specifications with ``registry.register(BackendSpec(...))``."""


@hookspec
def polystore_register_merge_functions(registry: MergeRegistry) -> None:
    """Register vector-clock merge functions with ``registry.register(name, function)``.

    A route then names one with ``resolver = "vector"`` and ``merge = "NAME"``.
    """


@hookspec
def polystore_wrap_store(store: DataStore, route: str) -> DataStore | None:
    """Return a wrapper around ``store`` for ``route`` (metrics, tracing), or ``None``.

    Wrappers are applied in turn: each receives the previous result.
    """
