"""The :class:`Polystore` facade: builds backends from settings, routes data, checks routes."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from types import TracebackType
from typing import Any, NoReturn, TypeVar

import pydantic
from pydantic import BaseModel

from polystore.availability import BackendAvailability, GatedStore
from polystore.breaker import CircuitBreaker, CircuitBreakerStore
from polystore.collections import Collection, TransactionCollection
from polystore.errors import (
    ConfigurationError,
    PolystoreError,
    RouteRequirementError,
    StoreError,
    ValidationError,
)
from polystore.models import Session, Transaction, UserProfile
from polystore.plugins import PluginManager
from polystore.protocol import Backend, DataStore
from polystore.replication import ReplicatedStore
from polystore.replication.merges import MergeFunction
from polystore.replication.resolvers import Resolver
from polystore.replication.routes import build_replicated_store, resolver_for
from polystore.settings import (
    BackendConfig,
    PolystoreSettings,
    RouteConfig,
    describe_validation_error,
    load_settings,
)
from polystore.sharding import ShardedStore
from polystore.sharding.routes import SHARD_MAP_SUFFIX, build_sharded_store
from polystore.startup import backend_failure, open_backends
from polystore.telemetry import Instruments, instrument, instruments_for
from polystore.types import TTL, Capabilities, Health, JSONValue, Version

__all__ = ["PolyglotPersistenceManager", "Polystore", "RouteInfo"]

logger = logging.getLogger("polystore")

M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class RouteInfo:
    """A started route: where it goes and what it gets."""

    name: str
    backend: str
    plugin: str
    namespace: str
    requires: Capabilities
    capabilities: Capabilities
    default_ttl: float | None
    shards: tuple[str, ...] = ()
    strategy: str | None = None
    replicas: tuple[str, ...] = ()


class Polystore:
    """One application's stores: backends from plugins, routes over them, typed collections.

    Use as an async context manager::

        async with Polystore.from_settings() as ps:
            await ps.sessions.save(Session(id="s1", user_id="u1"), ttl=900)

    Args:
        settings: Configuration; by default read from ``polystore.toml`` and ``POLYSTORE_*``.
        plugins: The plugin manager; a new one (entry points loaded lazily) by default.
        merge_functions: Merge functions of vector-clock routes by name, for settings
            that say ``merge = "NAME"`` (next to those plugins register).

    Raises:
        ConfigurationError: A ``merge_functions`` entry is not a name and a callable.
    """

    def __init__(
        self,
        settings: PolystoreSettings | None = None,
        *,
        plugins: PluginManager | None = None,
        merge_functions: Mapping[str, MergeFunction] | None = None,
    ) -> None:
        self.settings = (settings if settings is not None else load_settings()).resolved()
        self.plugins = plugins if plugins is not None else PluginManager()
        self._merge_functions = _checked_merge_functions(merge_functions or {})
        self._resolvers: dict[str, Resolver] = {}
        self._backends: dict[str, Backend] = {}
        self._breakers: dict[str, CircuitBreaker] = {}
        self._availability: dict[str, BackendAvailability] = {}
        self._gated: dict[str, GatedStore] = {}
        self._routes: dict[str, DataStore] = {}
        self._sharded: dict[str, ShardedStore] = {}
        self._replicated: dict[str, ReplicatedStore] = {}
        self._route_info: dict[str, RouteInfo] = {}
        self._collections: dict[str, Collection[Any]] = {}
        self._instruments: Instruments | None = None
        self._started = False

    @classmethod
    def from_settings(
        cls,
        path: str | Path | None = None,
        *,
        plugins: PluginManager | None = None,
        merge_functions: Mapping[str, MergeFunction] | None = None,
    ) -> Polystore:
        """Settings from ``path`` (TOML), or from ``POLYSTORE_*`` and ``./polystore.toml``."""
        return cls(load_settings(path), plugins=plugins, merge_functions=merge_functions)

    @classmethod
    def from_config(
        cls,
        config: Mapping[str, Any],
        *,
        plugins: PluginManager | None = None,
        merge_functions: Mapping[str, MergeFunction] | None = None,
    ) -> Polystore:
        """Settings from a mapping shaped like ``polystore.toml``."""
        return cls(load_settings(config), plugins=plugins, merge_functions=merge_functions)

    def __repr__(self) -> str:
        routes = ", ".join(
            f"{n}->{'+'.join(r.backend_names())}" for n, r in self.settings.routes.items()
        )
        return f"<Polystore backends={sorted(self.settings.backends)} routes=[{routes}]>"

    # -- life cycle ---------------------------------------------------------------------

    async def __aenter__(self) -> Polystore:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def start(self) -> None:
        """Build and open every backend, then create and check every route.

        Raises:
            ConfigurationError: Bad settings, unknown plugin (BackendNotFoundError), or a
                route whose store lacks a required capability (RouteRequirementError).
            StoreUnavailableError: A required backend could not be reached.
            PolystoreError: One error naming the first backend that failed to open; every
                backend is closed again before it is raised. A backend configured with
                ``required = false`` that cannot be reached does not fail start-up (see
                :mod:`polystore.availability`).
        """
        if self._started:
            return
        self._instruments = instruments_for(self.settings.telemetry)
        try:
            self._resolvers = self._route_resolvers()
            for name, config in self.settings.backends.items():
                self._backends[name] = self._build_backend(name, config)
                if config.circuit_breaker.enabled:
                    self._breakers[name] = CircuitBreaker.from_settings(
                        name, config.circuit_breaker
                    )
            configs = self.settings.backends
            down = await open_backends(
                self._backends,
                plugins={name: config.plugin for name, config in configs.items()},
                optional=frozenset(name for name, config in configs.items() if not config.required),
            )
            for name, error in down.items():
                self._availability[name] = BackendAvailability(
                    name, self._backends[name], error, on_open=self._check_routes
                )
            for name, route in self.settings.routes.items():
                self._add_route(name, route)
        except BaseException:
            await self.aclose()
            raise
        for availability in self._availability.values():
            availability.start()
        self._started = True

    async def aclose(self) -> None:
        """Close every backend this instance built."""
        availability, self._availability = list(self._availability.values()), {}
        for waiting in availability:
            await waiting.aclose()
        backends, self._backends = list(self._backends.values()), {}
        self._breakers.clear()
        self._gated.clear()
        self._routes.clear()
        self._sharded.clear()
        replicated, self._replicated = list(self._replicated.values()), {}
        for copied in replicated:  # replica calls still running end before the backends
            await copied.aclose()
        self._route_info.clear()
        self._collections.clear()
        self._started = False
        for backend in backends:
            with contextlib.suppress(PolystoreError, OSError):
                await backend.aclose()

    def _route_resolvers(self) -> dict[str, Resolver]:
        """The resolver of every replicated route, merge functions found, before any I/O."""
        routes = self.settings.routes.items()
        replicated = {name: route for name, route in routes if route.replicas is not None}
        if not any(route.resolver == "vector" for route in replicated.values()):
            return {}
        merges = self.plugins.merge_functions.with_application(self._merge_functions)
        return {name: resolver_for(name, route, merges) for name, route in replicated.items()}

    def _build_backend(self, name: str, config: BackendConfig) -> Backend:
        spec = self.plugins.backends.get(config.plugin)
        try:
            return spec.build(config.options(), instance_name=name)
        except pydantic.ValidationError as exc:
            raise ConfigurationError(
                f"invalid settings for backend {name!r} (plugin {config.plugin!r}): "
                + describe_validation_error(
                    exc,
                    f"backends.{name}",
                    models=(spec.settings_model, BackendConfig),
                    config=self.settings.config_file,
                )
            ) from None
        except Exception as exc:  # noqa: BLE001 - any other failure of a plugin's factory
            raise backend_failure(name, config.plugin, exc, operation="build")  # noqa: B904

    def _add_route(self, name: str, route: RouteConfig) -> None:
        if route.replicas is not None:
            self._add_replicated_route(name, route)
            return
        if route.backend is None:
            self._add_sharded_route(name, route)
            return
        backend = self._backends[route.backend]
        namespace = route.namespace or name
        store: DataStore = backend.namespace(namespace)
        breaker = self._breakers.get(route.backend)
        if breaker is not None:
            store = CircuitBreakerStore(store, breaker)
        required = Capabilities.parse(route.requires or ())
        possible = Capabilities.NONE
        availability = self._availability.get(route.backend)
        if availability is not None:
            # Down: what the backend detects on opening is not known yet, so the route is
            # checked against the most its plugin provides now, and for real once it opens.
            store = self._gated[name] = GatedStore(
                store, availability, route=name, requires=required
            )
            plugin = self.settings.backends[route.backend].plugin
            possible = self.plugins.backends.get(plugin).capabilities
        store = self.plugins.wrap_store(store, name)
        missing = required & ~(possible | store.capabilities)
        if missing:
            plugin = self.settings.backends[route.backend].plugin
            raise RouteRequirementError(
                f"route {name!r} requires {', '.join(missing.names())}, which backend "
                f"{route.backend!r} (plugin {plugin!r}) does not provide; it provides "
                f"{', '.join(store.capabilities.names()) or 'nothing'}",
                route=name,
                missing=missing.names(),
                backend=route.backend,
            )
        self._routes[name] = self._observed(name, store, [route.backend], namespace)
        logger.debug("route %s -> %s (%s)", name, store.name, ",".join(required.names()))
        self._route_info[name] = RouteInfo(
            name=name,
            backend=route.backend,
            plugin=self.settings.backends[route.backend].plugin,
            namespace=namespace,
            requires=required,
            capabilities=store.capabilities,
            default_ttl=route.default_ttl,
        )

    def _observed(
        self, name: str, store: DataStore, backends: Sequence[str], namespace: str
    ) -> DataStore:
        """The route's store as callers get it: traced and measured when telemetry is
        collected (see :mod:`polystore.telemetry`)."""
        plugins = [self.settings.backends[backend].plugin for backend in backends]
        return instrument(
            store, route=name, plugins=plugins, namespace=namespace, instruments=self._instruments
        )

    def _member_store(self, route: str, backend_name: str, namespace: str) -> DataStore:
        """One backend's part of a sharded or replicated route: behind the backend's
        breaker, and refused at once while an optional backend is down."""
        store: DataStore = self._backends[backend_name].namespace(namespace)
        breaker = self._breakers.get(backend_name)
        if breaker is not None:
            store = CircuitBreakerStore(store, breaker)
        availability = self._availability.get(backend_name)
        if availability is not None:
            store = GatedStore(store, availability, route=route, requires=Capabilities.NONE)
        return store

    def _check_routes(self) -> None:
        """Check the routes of optional backends that have opened since start-up."""
        for name, gated in self._gated.items():
            if not gated.availability.available:
                continue
            info = self._route_info.get(name)
            if info is not None:
                self._route_info[name] = replace(info, capabilities=gated.capabilities)
            unmet = gated.unmet()
            if unmet is not None:
                logger.error("%s; its calls raise RouteRequirementError", unmet.message)

    def _add_sharded_route(self, name: str, route: RouteConfig) -> None:
        """A route spread over several backends (see :mod:`polystore.sharding`)."""
        namespace = route.namespace or name
        ids = route.shards or ()
        shards = self._member_stores(name, ids, namespace)
        map_store = self._backends[ids[0]].namespace(namespace + SHARD_MAP_SUFFIX)
        sharded = build_sharded_store(name, route, shards, map_store)
        self._add_spread_route(
            name,
            route,
            ids,
            sharded,
            lacking="not every shard provides (shards: {members}); together they provide "
            "{provided}",
            shards=tuple(ids),
            strategy=route.strategy,
        )
        self._sharded[name] = sharded

    def _add_replicated_route(self, name: str, route: RouteConfig) -> None:
        """A route copied to several backends (see :mod:`polystore.replication`)."""
        namespace = route.namespace or name
        ids = route.replicas or ()
        replicas = self._member_stores(name, ids, namespace)
        replicated = build_replicated_store(
            name, route, replicas, resolver=self._resolvers.get(name)
        )
        self._add_spread_route(
            name,
            route,
            ids,
            replicated,
            lacking="a replicated store over {members} does not provide; it provides "
            "{provided} (see docs/replication.md)",
            replicas=tuple(ids),
        )
        self._replicated[name] = replicated

    def _member_stores(
        self, route: str, backend_names: Sequence[str], namespace: str
    ) -> dict[str, DataStore]:
        return {b: self._member_store(route, b, namespace) for b in backend_names}

    def _add_spread_route(
        self,
        name: str,
        route: RouteConfig,
        ids: Sequence[str],
        spread: DataStore,
        *,
        lacking: str,
        **shape: Any,
    ) -> None:
        """Wrap, check and register a route over several backends.

        Args:
            name: The route.
            route: Its settings.
            ids: The backends it spans, in settings order.
            spread: The sharded or replicated store over them.
            lacking: Ends "route X requires Y, which ..." when a requirement is unmet;
                ``{members}`` names the backends and their plugins, ``{provided}`` what
                the store provides.
            **shape: The :class:`RouteInfo` fields that describe the spread.

        Raises:
            RouteRequirementError: The store lacks a capability the route requires.
        """
        namespace = route.namespace or name
        store = self.plugins.wrap_store(spread, name)
        required = Capabilities.parse(route.requires or ())
        missing = required & ~store.capabilities
        plugins = {b: self.settings.backends[b].plugin for b in ids}
        if missing:
            members = ", ".join(f"{b} ({p})" for b, p in plugins.items())
            provided = ", ".join(store.capabilities.names()) or "nothing"
            raise RouteRequirementError(
                f"route {name!r} requires {', '.join(missing.names())}, which "
                + lacking.format(members=members, provided=provided),
                route=name,
                missing=missing.names(),
                backend=",".join(ids),
            )
        self._routes[name] = self._observed(name, store, ids, namespace)
        self._route_info[name] = RouteInfo(
            name=name,
            backend=",".join(ids),
            plugin=",".join(dict.fromkeys(plugins.values())),
            namespace=namespace,
            requires=required,
            capabilities=store.capabilities,
            default_ttl=route.default_ttl,
            **shape,
        )

    def replicated(self, name: str) -> ReplicatedStore:
        """The replicated store behind route ``name``, for ``repair()``.

        Raises:
            ConfigurationError: No such route, or the route is not replicated.
        """
        self.route(name)
        found = self._replicated.get(name)
        if found is None:
            raise ConfigurationError(f"route {name!r} is not replicated; give it replicas = [...]")
        return found

    def sharded(self, name: str) -> ShardedStore:
        """The sharded store behind route ``name``, for ``add_shard``, ``rebalance``, ...

        Raises:
            ConfigurationError: No such route, or the route is not sharded.
        """
        self.route(name)
        found = self._sharded.get(name)
        if found is None:
            raise ConfigurationError(f"route {name!r} is not sharded; give it shards = [...]")
        return found

    def _require_started(self) -> None:
        if not self._started:
            raise ConfigurationError("Polystore is not started; use `async with` or start()")

    # -- routes and collections ---------------------------------------------------------

    @property
    def backends(self) -> Mapping[str, Backend]:
        """The backends built from the settings, by name."""
        return dict(self._backends)

    @property
    def breakers(self) -> Mapping[str, CircuitBreaker]:
        """The circuit breaker of each backend that has one, by backend name."""
        return dict(self._breakers)

    @property
    def routes(self) -> Mapping[str, RouteInfo]:
        """Every started route, by name."""
        return dict(self._route_info)

    def route(self, name: str) -> DataStore:
        """The store behind route ``name``.

        Raises:
            ConfigurationError: No such route is configured.
        """
        self._require_started()
        try:
            return self._routes[name]
        except KeyError:
            known = ", ".join(sorted(self._routes)) or "none"
            raise ConfigurationError(
                f"route {name!r} is not configured (configured: {known}); add [routes.{name}]"
            ) from None

    def register_store(
        self, name: str, store: DataStore, *, requires: Capabilities = Capabilities.NONE
    ) -> None:
        """Add a route served by a store built elsewhere (checked like configured routes)."""
        self._require_started()
        missing = requires & ~store.capabilities
        if missing:
            raise RouteRequirementError(
                f"route {name!r} requires {', '.join(missing.names())}, which store "
                f"{store.name!r} does not provide",
                route=name,
                missing=missing.names(),
            )
        self._routes[name] = store
        self._collections.pop(name, None)

    def collection(
        self, name: str, model: type[M], *, key_field: str | None = None
    ) -> Collection[M]:
        """A typed collection of ``model`` over route ``name``."""
        info = self._route_info.get(name)
        return Collection(
            self.route(name),
            model,
            key_field=key_field,
            default_ttl=info.default_ttl if info is not None else None,
        )

    def _cached(self, name: str, model: type[M]) -> Collection[M]:
        found = self._collections.get(name)
        if found is None:
            found = self.collection(name, model)
            self._collections[name] = found
        return found

    @property
    def sessions(self) -> Collection[Session]:
        """Sessions, on the ``sessions`` route (default ttl from the route)."""
        return self._cached("sessions", Session)

    @property
    def profiles(self) -> Collection[UserProfile]:
        """User profiles, on the ``profiles`` route."""
        return self._cached("profiles", UserProfile)

    @property
    def transactions(self) -> TransactionCollection[Transaction]:
        """Money transactions, idempotent by key, on the ``transactions`` route."""
        found = self._collections.get("transactions")
        if not isinstance(found, TransactionCollection):
            found = TransactionCollection(self.route("transactions"), Transaction)
            self._collections["transactions"] = found
        return found

    async def health(self) -> dict[str, Health]:
        """Health of every backend, checked concurrently.

        Answers within the largest backend ``timeout`` (plus a moment): a backend that
        does not answer in time, a frozen server say, is reported with ``ok=False``
        without holding up the others.
        """
        self._require_started()
        names = list(self._backends)
        results = await asyncio.gather(*(_health_within(self._backends[n]) for n in names))
        return dict(zip(names, results, strict=True))

    # -- conveniences carried over from PolyglotPersistenceManager ---------------------------

    async def save(
        self, store_name: str, key: str, data: JSONValue, *, ttl: TTL | None = None
    ) -> Version:
        """Save ``data`` under ``key`` on route ``store_name``."""
        return await self.route(store_name).save(key, data, ttl=ttl)

    async def get(self, store_name: str, key: str) -> JSONValue | None:
        """Read ``key`` from route ``store_name``."""
        return await self.route(store_name).get(key)

    async def delete(self, store_name: str, key: str) -> bool:
        """Delete ``key`` from route ``store_name``; return whether it existed."""
        return await self.route(store_name).delete(key)

    async def save_session_data(
        self,
        session_id: str,
        data: Mapping[str, Any],
        *,
        user_id: str = "anonymous",
        ttl: TTL | None = None,
    ) -> Session:
        """Save a session's data (with the route's default ttl unless given)."""
        session = Session(id=session_id, user_id=user_id, data=dict(data))
        if ttl is None:
            await self.sessions.save(session)
        else:
            await self.sessions.save(session, ttl=ttl)
        return session

    async def get_session_data(self, session_id: str) -> dict[str, Any] | None:
        """The data of a live session, or ``None``."""
        session = await self.sessions.get(session_id)
        return None if session is None else session.data

    async def save_user_profile(
        self, user_id: str, profile: UserProfile | Mapping[str, Any]
    ) -> UserProfile:
        """Save a user profile (a model, or a mapping of its fields)."""
        if not isinstance(profile, UserProfile):
            try:
                profile = UserProfile.model_validate({**profile, "user_id": user_id})
            except pydantic.ValidationError as exc:
                raise_validation(exc, "profile")
        await self.profiles.save(profile)
        return profile

    async def get_user_profile(self, user_id: str) -> UserProfile | None:
        """The profile of ``user_id``, or ``None``."""
        return await self.profiles.get(user_id)

    async def save_transaction(self, transaction: Transaction | Mapping[str, Any]) -> Transaction:
        """Record a transaction once per idempotency key; return the stored one."""
        if not isinstance(transaction, Transaction):
            try:
                transaction = Transaction.model_validate(dict(transaction))
            except pydantic.ValidationError as exc:
                raise_validation(exc, "transaction")
        stored, _ = await self.transactions.record(transaction)
        return stored

    async def get_transaction(self, transaction_id: str) -> Transaction | None:
        """The transaction with ``transaction_id``, or ``None``."""
        return await self.transactions.get(transaction_id)


_HEALTH_TIMEOUT = 10.0
"""Seconds a backend that states no ``timeout`` of its own gets to answer a health check."""
_HEALTH_GRACE = 0.25
"""Extra time a backend that bounds its own check gets before it is cut short."""


async def _health_within(backend: Backend) -> Health:
    """``backend.health()``, cut short (and reported unhealthy) after its timeout."""
    own: object = getattr(backend, "timeout", None)
    limit = own + _HEALTH_GRACE if isinstance(own, (int, float)) else _HEALTH_TIMEOUT
    try:
        return await asyncio.wait_for(backend.health(), limit)
    except asyncio.TimeoutError:
        detail = f"no answer within {limit:g} s"
    except StoreError as exc:
        detail = exc.message
    return Health(ok=False, backend=backend.name, latency_ms=limit * 1000, detail=detail)


def _checked_merge_functions(
    functions: Mapping[str, MergeFunction],
) -> dict[str, MergeFunction]:
    """``merge_functions`` as given to :class:`Polystore`, checked before any I/O."""
    checked: dict[str, MergeFunction] = {}
    for name, function in functions.items():
        if not isinstance(name, str) or ":" in name or not name:
            raise ConfigurationError(
                f"merge_functions: {name!r} is not a merge function name (a 'pkg.mod:fn' "
                "import path goes in the settings' merge key, not here)"
            )
        if not callable(function):
            raise ConfigurationError(
                f"merge_functions[{name!r}] is a {type(function).__name__}, not a callable"
            )
        checked[name] = function
    return checked


def raise_validation(exc: pydantic.ValidationError, what: str) -> NoReturn:
    """Re-raise a pydantic error as a polystore ValidationError."""
    raise ValidationError(f"invalid {what}: " + describe_validation_error(exc, what)) from exc


PolyglotPersistenceManager = Polystore
"""The reference design's name for :class:`Polystore`."""
