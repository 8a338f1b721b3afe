"""Configuration: backends and routes, from ``polystore.toml``, ``POLYSTORE_*`` or Python.

```toml
[backends.cache]
plugin = "redis"
url = "redis://localhost:6379/0"

[routes.sessions]
backend = "cache"
requires = ["ttl"]
default_ttl = 1800
```

With no backends configured, one embedded SQLite backend (``./.polystore/polystore.db``)
serves the standard routes ``sessions``, ``profiles`` and ``transactions``. With exactly one
backend and no routes, that backend serves the standard routes (and must meet their
requirements); otherwise only the routes configured exist.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

import pydantic
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from polystore.breaker import CircuitBreakerSettings
from polystore.config_env import warn_about_unknown_variables
from polystore.config_file import (
    CONFIG_ENV,
    DEFAULT_CONFIG_FILE,
    ConfigFile,
    TomlFileSource,
    chosen_file,
    using_file,
)
from polystore.errors import ConfigurationError
from polystore.redact import redact_options
from polystore.settings_errors import describe_validation_error, did_you_mean
from polystore.telemetry import TelemetrySettings
from polystore.types import Capabilities

__all__ = [
    "CONFIG_ENV",
    "DEFAULT_CONFIG_FILE",
    "STANDARD_ROUTES",
    "BackendConfig",
    "PolystoreSettings",
    "RouteConfig",
    "describe_validation_error",
    "load_settings",
]

_given_only: ContextVar[bool] = ContextVar("polystore_settings_given_only", default=False)


PLACEMENTS = ("backend", "shards", "replicas")
"""The fields of which a route names exactly one."""


_DURATION = pydantic.TypeAdapter(timedelta)


class _StandardRoute(BaseModel):
    requires: tuple[str, ...]
    default_ttl: float | None = None


STANDARD_ROUTES: dict[str, _StandardRoute] = {
    "sessions": _StandardRoute(requires=("ttl",), default_ttl=1800.0),
    "profiles": _StandardRoute(requires=("query",)),
    "transactions": _StandardRoute(requires=("transactions", "cas", "durable")),
}
"""Routes every application gets, with what each requires by default."""


class BackendConfig(BaseModel):
    """One backend: the plugin that provides it and the plugin's own options.

    The options are checked against the plugin's settings model when the backend is built.
    ``circuit_breaker`` and ``required`` are polystore's own and are not passed to the plugin.

    Attributes:
        plugin: The backend plugin's name (``"redis"``, ``"mongodb"``, ...).
        circuit_breaker: The backend's circuit breaker.
        required: Whether the application needs this backend to start. With ``false``,
            a backend that cannot be reached does not stop start-up: its routes raise
            ``StoreUnavailableError`` until it answers (see :mod:`polystore.availability`).
    """

    model_config = ConfigDict(extra="allow", frozen=True)

    plugin: str = Field(min_length=1)
    circuit_breaker: CircuitBreakerSettings = Field(default_factory=CircuitBreakerSettings)
    required: bool = True

    def options(self) -> dict[str, Any]:
        """Every option, ``plugin`` included, as given."""
        return {"plugin": self.plugin, **(self.model_extra or {})}

    def __repr__(self) -> str:
        return f"BackendConfig({redact_options(self.options())!r})"

    __str__ = __repr__


class RouteConfig(BaseModel):
    """Where one kind of data goes and what its store must guarantee.

    A route names exactly one placement: ``backend`` (one store), ``shards`` (spread
    over several backends, see ``docs/sharding.md``) or ``replicas`` (copied to several
    backends, see ``docs/replication.md``).

    Attributes:
        shards: Backend names; the route's namespace is used in each.
        strategy: ``"hash"`` (rendezvous hashing, the default) or ``"range"``.
        ranges: With ``strategy = "range"``: ``[start, end, backend]`` triples, each
            half-open ``[start, end)``; an empty ``end`` has no end.
        weights: With ``strategy = "hash"``: relative share of each shard (default 1).
        shard_map_refresh: Seconds between re-reads of the stored shard map.
        replicas: Backend names, each holding a full copy of the route (multi-master,
            see ``docs/replication.md``); the route's namespace is used in each.
        write_quorum: Replicas that must take a write (default: a majority).
        read_quorum: Replicas that must answer a read (default: a majority).
        resolver: ``"lww"`` (last write wins, the default) or ``"vector"`` (vector
            clocks; concurrent writes are merged by ``merge``).
        merge: With ``resolver = "vector"``: the merge function, called with the values
            of concurrent writes and returning the merged value: a name registered from
            Python (``Polystore(merge_functions=...)``) or by a plugin
            (``polystore_register_merge_functions``), or ``"package.module:function"``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    backend: str | None = Field(default=None, min_length=1)
    shards: tuple[str, ...] | None = Field(default=None, min_length=1)
    strategy: Literal["hash", "range"] = "hash"
    ranges: tuple[tuple[str, str, str], ...] | None = None
    weights: dict[str, float] | None = None
    shard_map_refresh: float = Field(default=5.0, gt=0, le=3600)
    replicas: tuple[str, ...] | None = Field(default=None, min_length=1)
    write_quorum: int | None = Field(default=None, ge=1)
    read_quorum: int | None = Field(default=None, ge=1)
    resolver: Literal["lww", "vector"] = "lww"
    merge: str | None = Field(default=None, pattern=r"^[A-Za-z_][\w.]*(:[A-Za-z_]\w*)?$")
    namespace: str | None = Field(default=None, description="Defaults to the route name.")
    requires: tuple[str, ...] | None = Field(
        default=None, description="Capability names; standard routes have defaults."
    )
    default_ttl: float | None = Field(
        default=None,
        gt=0,
        description="Seconds, a timedelta, or an ISO 8601 duration such as 'PT30M'.",
    )

    @field_validator("default_ttl", mode="before")
    @classmethod
    def _ttl_in_seconds(cls, value: object) -> object:
        if isinstance(value, str):
            try:
                value = _DURATION.validate_python(value)
            except pydantic.ValidationError:
                return value  # reported as "not a valid number"
        if isinstance(value, timedelta):
            return value.total_seconds()
        return value

    @field_validator("requires")
    @classmethod
    def _known_capabilities(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        if value is not None:
            Capabilities.parse(value)
        return value

    @model_validator(mode="after")
    def _one_placement(self) -> RouteConfig:
        given = [name for name in PLACEMENTS if getattr(self, name, None) is not None]
        if len(given) != 1:
            raise ValueError(
                f"a route needs exactly one of {', '.join(PLACEMENTS)}; got "
                + (", ".join(given) or "none")
            )
        self._check_replicas()
        if self.shards is None:
            if self.ranges is not None or self.weights is not None or self.strategy != "hash":
                raise ValueError("strategy, ranges and weights need shards")
            return self
        if len(set(self.shards)) != len(self.shards):
            raise ValueError("shards repeat a backend")
        named = [r[2] for r in self.ranges or ()] + list(self.weights or ())
        strangers = sorted({n for n in named if n not in self.shards})
        if strangers:
            raise ValueError(f"ranges or weights name backends not in shards: {strangers}")
        if self.strategy == "range" and not self.ranges:
            raise ValueError('strategy = "range" needs ranges = [[start, end, backend], ...]')
        if self.strategy == "hash" and self.ranges is not None:
            raise ValueError('ranges need strategy = "range"')
        if any(w <= 0 for w in (self.weights or {}).values()):
            raise ValueError("weights must be > 0")
        return self

    def _check_replicas(self) -> None:
        if self.replicas is None:
            given = self.write_quorum, self.read_quorum, self.merge
            if any(v is not None for v in given) or self.resolver != "lww":
                raise ValueError("write_quorum, read_quorum, resolver and merge need replicas")
            return
        if len(set(self.replicas)) != len(self.replicas):
            raise ValueError("replicas repeat a backend")
        for name, quorum in (
            ("write_quorum", self.write_quorum),
            ("read_quorum", self.read_quorum),
        ):
            if quorum is not None and quorum > len(self.replicas):
                raise ValueError(
                    f"{name} = {quorum} is more than the {len(self.replicas)} replicas"
                )
        if self.resolver == "vector" and self.merge is None:
            raise ValueError(
                'resolver = "vector" needs merge = "NAME" (a registered merge function) '
                'or merge = "package.module:function"'
            )
        if self.resolver == "lww" and self.merge is not None:
            raise ValueError('merge needs resolver = "vector"')

    def backend_names(self) -> tuple[str, ...]:
        """Every backend the route uses."""
        if self.replicas is not None:
            return self.replicas
        return (self.backend,) if self.backend is not None else tuple(self.shards or ())


class PolystoreSettings(BaseSettings):
    """All of polystore's configuration."""

    model_config = SettingsConfigDict(
        env_prefix="POLYSTORE_",
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
    )

    backends: dict[str, BackendConfig] = Field(default_factory=dict)
    routes: dict[str, RouteConfig] = Field(default_factory=dict)
    telemetry: TelemetrySettings = Field(default_factory=TelemetrySettings)
    _config_file: ConfigFile | None = PrivateAttr(default=None)

    @property
    def config_file(self) -> ConfigFile | None:
        """The TOML file these settings were read from, if any (errors name its lines)."""
        return self._config_file

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        if _given_only.get():
            return (init_settings,)
        warn_about_unknown_variables(os.environ, settings_cls.model_fields)
        return (init_settings, env_settings, TomlFileSource(settings_cls, chosen_file()))

    def __repr__(self) -> str:
        backends = {name: redact_options(b.options()) for name, b in self.backends.items()}
        return f"PolystoreSettings(backends={backends!r}, routes={self.routes!r})"

    __str__ = __repr__

    def resolved(self) -> PolystoreSettings:
        """These settings with defaults filled in: the embedded backend, standard routes.

        Raises:
            ConfigurationError: A route names a backend that is not configured.
        """
        backends = dict(self.backends) or {
            "default": BackendConfig.model_validate(
                {"plugin": "sqlite", "path": ".polystore/polystore.db"}
            )
        }
        routes = dict(self.routes)
        if not routes and len(backends) == 1:
            (only,) = backends
            for name in STANDARD_ROUTES:
                routes.setdefault(name, RouteConfig(backend=only))
        filled: dict[str, RouteConfig] = {}
        for name, route in routes.items():
            for shard in route.shards or ():
                if shard not in backends:
                    raise ConfigurationError(
                        f"routes.{name}.shards: backend {shard!r} is not configured "
                        f"(configured: {', '.join(sorted(backends))})"
                    )
            for replica in route.replicas or ():
                if replica not in backends:
                    raise ConfigurationError(
                        f"routes.{name}.replicas: backend {replica!r} is not configured; "
                        + did_you_mean(replica, sorted(backends), kind="backends")
                    )
            if route.backend is not None and route.backend not in backends:
                raise ConfigurationError(
                    f"routes.{name}.backend: backend {route.backend!r} is not configured; "
                    + did_you_mean(route.backend, sorted(backends), kind="backends")
                )
            standard = STANDARD_ROUTES.get(name)
            updates: dict[str, Any] = {}
            if route.requires is None:
                updates["requires"] = standard.requires if standard else ()
            if route.default_ttl is None and standard is not None and standard.default_ttl:
                updates["default_ttl"] = standard.default_ttl
            if route.namespace is None:
                updates["namespace"] = name
            filled[name] = route.model_copy(update=updates)
        resolved = PolystoreSettings.model_construct(
            backends=backends, routes=filled, telemetry=self.telemetry
        )
        resolved._config_file = self._config_file
        return resolved


@contextlib.contextmanager
def _only_given() -> Iterator[None]:
    """Within the block, settings come from what is passed only (no environment, no file)."""
    token = _given_only.set(True)
    try:
        yield
    finally:
        _given_only.reset(token)


def load_settings(
    source: Mapping[str, Any] | PolystoreSettings | str | Path | None = None,
) -> PolystoreSettings:
    """Build settings from a mapping, a TOML file path, or the environment and ``polystore.toml``.

    A mapping is the whole configuration. Otherwise values come from ``POLYSTORE_*``
    environment variables first, then the TOML file (``path``, else ``POLYSTORE_CONFIG``,
    else ``./polystore.toml`` if present). Passing ``path`` changes nothing process-wide
    (no environment variable is set).

    Raises:
        ConfigurationError: The configuration is invalid: an unknown key (with the closest
            known one), a bad value, a file named but missing, or TOML that does not parse.
            Messages give the key path and the file and line, never a value (secrets).
    """
    if isinstance(source, PolystoreSettings):
        return source
    if isinstance(source, Mapping):
        try:
            with _only_given():
                return PolystoreSettings(**{str(key): value for key, value in source.items()})
        except pydantic.ValidationError as exc:
            raise ConfigurationError(
                "invalid configuration: "
                + describe_validation_error(exc, models=(PolystoreSettings,))
            ) from None
    path = Path(source) if source is not None else None
    if path is not None and not path.is_file():
        raise ConfigurationError(f"configuration file {str(path)!r} does not exist")
    with using_file(path) if path is not None else contextlib.nullcontext():
        config = chosen_file()  # read here too, to name lines in errors
        try:
            settings = PolystoreSettings()
        except pydantic.ValidationError as exc:
            where = f" in {config.path}" if config.text else ""
            raise ConfigurationError(
                f"invalid configuration{where}: "
                + describe_validation_error(
                    exc, models=(PolystoreSettings,), config=config, environ=os.environ
                )
            ) from None
    settings._config_file = config if config.text else None
    return settings
