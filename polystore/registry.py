"""The registry that plugins fill with backend specifications."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from polystore.errors import BackendNotFoundError, PluginError
from polystore.protocol import Backend
from polystore.types import Capabilities

__all__ = ["BackendRegistry", "BackendSpec"]

KNOWN_DISTRIBUTIONS = {
    "redis": "polystore-redis",
    "mongodb": "polystore-mongodb",
    "postgres": "polystore-postgres",
}


@dataclass(frozen=True)
class BackendSpec:
    """What a plugin registers for one backend.

    Attributes:
        name: The plugin name used in configuration (``plugin = "redis"``).
        factory: Builds a backend from its validated settings and the instance name
            (``factory(settings, name=...)``).
        settings_model: A pydantic model (``extra="forbid"``) for the backend's options.
        capabilities: The most the backend can declare; an instance may declare less.
        description: One line for ``polystore plugins``.
    """

    name: str
    factory: Callable[..., Backend]
    settings_model: type[BaseModel]
    capabilities: Capabilities
    description: str = ""
    plugin: str = field(default="", compare=False)
    distribution: str = field(default="", compare=False)

    def build(self, options: dict[str, Any], *, instance_name: str) -> Backend:
        """Validate ``options`` against the settings model and build the backend."""
        settings = self.settings_model.model_validate(options)
        return self.factory(settings, name=instance_name)


class BackendRegistry:
    """Backend specifications by name; filled through ``polystore_register_backends``."""

    def __init__(self) -> None:
        self._specs: dict[str, BackendSpec] = {}
        self._owner = ""
        self._distribution = ""

    def scoped(self, plugin: str, distribution: str) -> BackendRegistry:
        """A view that records ``plugin`` and ``distribution`` on what it registers."""
        view = BackendRegistry.__new__(BackendRegistry)
        view._specs = self._specs
        view._owner = plugin
        view._distribution = distribution
        return view

    def register(self, spec: BackendSpec) -> None:
        """Add a backend specification.

        Raises:
            PluginError: Another plugin already registered a backend of that name.
        """
        if not isinstance(spec, BackendSpec):
            raise PluginError(f"register() takes a BackendSpec, not {type(spec).__name__}")
        existing = self._specs.get(spec.name)
        if existing is not None:
            raise PluginError(
                f"backend name clash: {spec.name!r} is registered by plugin "
                f"{existing.plugin!r} and again by plugin {self._owner!r}; "
                "disable one with POLYSTORE_DISABLE_PLUGINS"
            )
        self._specs[spec.name] = BackendSpec(
            name=spec.name,
            factory=spec.factory,
            settings_model=spec.settings_model,
            capabilities=spec.capabilities,
            description=spec.description,
            plugin=spec.plugin or self._owner,
            distribution=spec.distribution or self._distribution,
        )

    def get(self, name: str) -> BackendSpec:
        """Return the spec of backend ``name``.

        Raises:
            BackendNotFoundError: No plugin provides it; the message says what to install.
        """
        spec = self._specs.get(name)
        if spec is not None:
            return spec
        known = ", ".join(sorted(self._specs)) or "none"
        dist = KNOWN_DISTRIBUTIONS.get(name)
        close = difflib.get_close_matches(name, sorted(self._specs), n=1)
        if dist:
            hint = f"install it with `pip install {dist}`."
        elif close:
            hint = f"did you mean {close[0]!r}?"
        else:
            hint = "install the distribution that provides it (entry-point group 'polystore')."
        raise BackendNotFoundError(
            f"no backend plugin named {name!r} is installed; {hint} Available: {known}"
        )

    def __contains__(self, name: object) -> bool:
        return name in self._specs

    def __iter__(self) -> Iterator[BackendSpec]:
        return iter(sorted(self._specs.values(), key=lambda s: s.name))

    def __len__(self) -> int:
        return len(self._specs)
