"""Building a replicated route from settings (``[routes.NAME] replicas = [...]``)."""

from __future__ import annotations

from collections.abc import Mapping

from polystore.errors import ConfigurationError
from polystore.protocol import DataStore
from polystore.replication.merges import MergeRegistry, load_merge
from polystore.replication.resolvers import LastWriteWins, Resolver, VectorClock
from polystore.replication.store import ReplicatedStore
from polystore.settings import RouteConfig

__all__ = ["build_replicated_store", "load_merge", "resolver_for"]


def resolver_for(name: str, route: RouteConfig, merges: MergeRegistry | None = None) -> Resolver:
    """The resolver route ``name``'s settings name.

    ``merge`` is looked up in ``merges`` (a registered name) or imported
    (``"package.module:function"``).

    Raises:
        ConfigurationError: The merge function is not registered or cannot be imported;
            the message names the route.
    """
    if route.resolver == "vector":
        if route.merge is None:  # settings validation already refuses this
            raise ConfigurationError('resolver = "vector" needs merge')
        registry = merges if merges is not None else MergeRegistry()
        try:
            return VectorClock(merge=registry.resolve(route.merge))
        except ConfigurationError as exc:
            raise ConfigurationError(f"route {name!r}: {exc.message}") from exc
    return LastWriteWins()


def build_replicated_store(
    name: str,
    route: RouteConfig,
    replicas: Mapping[str, DataStore],
    *,
    resolver: Resolver | None = None,
) -> ReplicatedStore:
    """The replicated store of route ``name`` over ``replicas`` (backend name -> store).

    Args:
        name: The route's name.
        route: The route's settings.
        replicas: The replicas' stores, by backend name.
        resolver: The resolver, when already resolved (see :func:`resolver_for`);
            otherwise built from the settings, with import paths only.

    Raises:
        ConfigurationError: A replica lacks CAS, a quorum is out of range, or the merge
            function cannot be loaded.
    """
    return ReplicatedStore(
        replicas,
        write_quorum=route.write_quorum,
        read_quorum=route.read_quorum,
        resolver=resolver if resolver is not None else resolver_for(name, route),
        name=f"replicated/{name}",
    )
