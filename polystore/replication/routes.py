"""Building a replicated route from settings (``[routes.NAME] replicas = [...]``)."""

from __future__ import annotations

import importlib
from collections.abc import Mapping

from polystore.errors import ConfigurationError
from polystore.protocol import DataStore
from polystore.replication.resolvers import LastWriteWins, MergeFunction, Resolver, VectorClock
from polystore.replication.store import ReplicatedStore
from polystore.settings import RouteConfig

__all__ = ["build_replicated_store", "load_merge"]


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


def resolver_for(route: RouteConfig) -> Resolver:
    """The resolver a route's settings name."""
    if route.resolver == "vector":
        if route.merge is None:  # settings validation already refuses this
            raise ConfigurationError('resolver = "vector" needs merge')
        return VectorClock(merge=load_merge(route.merge))
    return LastWriteWins()


def build_replicated_store(
    name: str, route: RouteConfig, replicas: Mapping[str, DataStore]
) -> ReplicatedStore:
    """The replicated store of route ``name`` over ``replicas`` (backend name -> store).

    Raises:
        ConfigurationError: A replica lacks CAS, a quorum is out of range, or the merge
            function cannot be loaded.
    """
    return ReplicatedStore(
        replicas,
        write_quorum=route.write_quorum,
        read_quorum=route.read_quorum,
        resolver=resolver_for(route),
        name=f"replicated/{name}",
    )
