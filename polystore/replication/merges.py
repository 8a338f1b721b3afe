"""Merge functions by name: what ``merge = "NAME"`` on a vector-clock route refers to.

A :class:`~polystore.replication.VectorClock` resolver hands the values of concurrent
writes to ``merge(values) -> value``. Settings name that function in one of two ways:

- a registered name, ``merge = "cart_union"``: registered by a plugin through the
  ``polystore_register_merge_functions(registry)`` hook, or by the application with
  ``Polystore(..., merge_functions={"cart_union": fn})``;
- an import path, ``merge = "package.module:function"``.

Each :class:`~polystore.plugins.PluginManager` fills its own registry (no module-global
one); a name registered twice is a :class:`~polystore.errors.PluginError` naming both
owners, as for backends.
"""

from __future__ import annotations

import difflib
import importlib
import re
from collections.abc import Iterator, Mapping

from polystore.errors import ConfigurationError, PluginError
from polystore.replication.resolvers import MergeFunction

__all__ = ["MergeFunction", "MergeRegistry", "load_merge"]

NAME_PATTERN = re.compile(r"^[A-Za-z_][\w.]*$")
"""A registered merge function's name: a Python-like dotted name, with no ``:``."""

APPLICATION = "application (merge_functions=)"
"""The owner recorded for functions the application passes to ``Polystore``."""


class MergeRegistry:
    """Merge functions by name; filled through ``polystore_register_merge_functions``."""

    def __init__(self) -> None:
        self._functions: dict[str, MergeFunction] = {}
        self._owners: dict[str, str] = {}
        self._owner = ""

    def scoped(self, plugin: str, distribution: str = "") -> MergeRegistry:
        """A view that records ``plugin`` as the owner of what it registers."""
        view = MergeRegistry.__new__(MergeRegistry)
        view._functions = self._functions
        view._owners = self._owners
        view._owner = f"{plugin} ({distribution})" if distribution else plugin
        return view

    def register(self, name: str, function: MergeFunction) -> None:
        """Add ``function`` under ``name``.

        Args:
            name: What settings write as ``merge = "NAME"`` (letters, digits, ``_``, ``.``).
            function: ``merge(values) -> value``: pure and deterministic, called with the
                values of concurrent writes, oldest first.

        Raises:
            PluginError: The name is malformed, the function is not callable, or another
                plugin (or the application) already registered that name.
        """
        owner = self._owner or "?"
        if not isinstance(name, str) or not NAME_PATTERN.match(name):
            raise PluginError(
                f"{owner}: merge function name {name!r} is not valid; use letters, digits, "
                "'_' and '.' (no ':', which marks an import path)"
            )
        if not callable(function):
            raise PluginError(
                f"{owner}: merge function {name!r} is a {type(function).__name__}, not a callable"
            )
        if name in self._functions:
            raise PluginError(
                f"merge function name clash: {name!r} is registered by "
                f"{self._owners[name]} and again by {owner}; rename one, or disable a "
                "plugin with POLYSTORE_DISABLE_PLUGINS"
            )
        self._functions[name] = function
        self._owners[name] = owner

    def get(self, name: str) -> MergeFunction:
        """The function registered as ``name``.

        Raises:
            ConfigurationError: Nothing is registered under that name; the message
                suggests the closest registered name and lists the others.
        """
        found = self._functions.get(name)
        if found is not None:
            return found
        close = difflib.get_close_matches(name, sorted(self._functions), n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        known = ", ".join(sorted(self._functions)) or "none"
        raise ConfigurationError(
            f"no merge function named {name!r} is registered; {hint}registered: {known}. "
            "Register one with Polystore(merge_functions={...}) or the "
            "polystore_register_merge_functions hook, or give an import path "
            "'package.module:function'"
        )

    def owner(self, name: str) -> str:
        """Who registered ``name`` (a plugin name, or the application)."""
        return self._owners[name]

    def resolve(self, merge: str) -> MergeFunction:
        """The function a route's ``merge`` setting names: an import path when it holds
        a ``:``, a registered name otherwise.

        Raises:
            ConfigurationError: Unknown name, or a path that cannot be imported.
        """
        if ":" in merge:
            return load_merge(merge)
        return self.get(merge)

    def copy(self) -> MergeRegistry:
        """An independent registry holding the same functions (for adding more)."""
        clone = MergeRegistry()
        clone._functions = dict(self._functions)
        clone._owners = dict(self._owners)
        return clone

    def with_application(self, functions: Mapping[str, MergeFunction]) -> MergeRegistry:
        """A copy with ``functions`` added as the application's own.

        Raises:
            PluginError: A name is malformed, not callable, or a plugin registered it too.
        """
        clone = self.copy().scoped(APPLICATION)
        for name, function in functions.items():
            clone.register(name, function)
        return clone

    def __contains__(self, name: object) -> bool:
        return name in self._functions

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._functions))

    def __len__(self) -> int:
        return len(self._functions)

    def __repr__(self) -> str:
        return f"<MergeRegistry {sorted(self._functions)}>"


def load_merge(path: str) -> MergeFunction:
    """Import the merge function named ``"package.module:function"``.

    Raises:
        ConfigurationError: The module cannot be imported, or has no such callable.
    """
    module_name, _, attribute = path.partition(":")
    if not module_name or not attribute:
        raise ConfigurationError(f"merge must be 'package.module:function'; got {path!r}")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigurationError(f"merge {path!r}: cannot import {module_name!r}: {exc}") from exc
    function = getattr(module, attribute, None)
    if not callable(function):
        raise ConfigurationError(f"merge {path!r}: {module_name} has no function {attribute!r}")
    return function  # type: ignore[no-any-return]
