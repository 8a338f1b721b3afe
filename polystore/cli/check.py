"""``polystore check``: every backend, then every route, each with how to fix a failure.

Backends are opened and pinged one by one, independently, so one that is down does not hide
the others. A route is then checked (built and its ``requires`` compared with what its store
provides) only when every backend it uses answered.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import asdict, dataclass
from typing import Any

import pydantic

from polystore.app import Polystore
from polystore.cli._group import command
from polystore.cli._ui import Ui
from polystore.errors import (
    BackendNotFoundError,
    ConfigurationError,
    PolystoreError,
    RouteRequirementError,
)
from polystore.plugins import PluginManager
from polystore.redact import redact_options, redact_text
from polystore.settings import (
    BackendConfig,
    PolystoreSettings,
    RouteConfig,
    describe_validation_error,
)

__all__ = [
    "BackendCheck",
    "RouteCheck",
    "check",
    "fix_for_backend",
    "fix_for_route",
    "route_backends",
]

_DURABLE_FIX = {
    "redis": "Redis is durable only when every primary runs with `appendonly yes` and "
    "`appendfsync always` (in redis.conf, or CONFIG SET appendonly yes / CONFIG SET "
    "appendfsync always); or route this data to postgres, mongodb or sqlite",
    "memory": "the memory backend keeps nothing across restarts: route this data to "
    "sqlite, postgres, mongodb or a durable Redis",
    "mongodb": "MongoDB is durable with w='majority' and journal=true (the defaults): "
    "remove the options that weaken them",
}
_TRANSACTIONS_FIX = {
    "mongodb": "MongoDB transactions need a replica set or a sharded cluster: start mongod "
    "with --replSet NAME and run rs.initiate() once (a single-node replica set will do)",
}


@dataclass
class BackendCheck:
    """The outcome for one backend."""

    name: str
    plugin: str
    ok: bool
    latency_ms: float = 0.0
    detail: str = ""
    fix: str = ""


@dataclass
class RouteCheck:
    """The outcome for one route."""

    name: str
    backends: list[str]
    ok: bool
    detail: str = ""
    fix: str = ""


def fix_for_backend(plugin: str, config: BackendConfig, exc: BaseException | None) -> str:
    """How to fix a backend that could not be built, opened or pinged."""
    if isinstance(exc, BackendNotFoundError):
        return (
            f"install the plugin that provides {plugin!r} (for the bundled ones: "
            f"pip install ./plugins/polystore-{plugin}, see docs/installation.md); "
            "`polystore plugins` lists what is installed"
        )
    if isinstance(exc, ConfigurationError):
        return "correct the option named above in the configuration this check used"
    shown = redact_options(config.options())
    where = next((str(v) for k, v in shown.items() if k.lower().endswith(("url", "dsn"))), "")
    target = f" at {where}" if where else ""
    return (
        f"is the {plugin} server running and reachable{target}? Check host, port, "
        "credentials and firewall; raise the backend's `timeout` if it answers slowly"
    )


def fix_for_route(name: str, plugin: str, missing: tuple[str, ...]) -> str:
    """How to give route ``name`` the capabilities it lacks."""
    fixes = []
    for capability in missing:
        specific = {"durable": _DURABLE_FIX, "transactions": _TRANSACTIONS_FIX}.get(capability, {})
        fixes.append(
            specific.get(plugin)
            or f"route {name!r} to a backend that provides {capability} "
            "(`polystore plugins` lists them), or drop it from the route's requires"
        )
    return "; ".join(fixes)


async def _check_backend(manager: PluginManager, name: str, config: BackendConfig) -> BackendCheck:
    result = BackendCheck(name, config.plugin, ok=False)
    try:
        spec = manager.backends.get(config.plugin)
        try:
            backend = spec.build(config.options(), instance_name=name)
        except pydantic.ValidationError as exc:
            raise ConfigurationError(
                f"invalid settings for backend {name!r} (plugin {config.plugin!r}): "
                + describe_validation_error(exc, f"backends.{name}")
            ) from None
        started = time.perf_counter()
        async with backend:
            health = await backend.health()
        result.ok, result.detail = health.ok, health.detail
        result.latency_ms = health.latency_ms or (time.perf_counter() - started) * 1000
        if not health.ok:
            result.fix = fix_for_backend(config.plugin, config, None)
    except (PolystoreError, OSError) as exc:
        result.detail = f"{type(exc).__name__}: {redact_text(str(exc))}"
        result.fix = fix_for_backend(config.plugin, config, exc)
    return result


def route_backends(route: RouteConfig) -> list[str]:
    """The backends a route uses: its ``backend``, ``shards`` or ``replicas``."""
    names: list[str] = []
    for field in ("backend", "shards", "replicas"):
        value = getattr(route, field, None)
        if isinstance(value, str):
            names.append(value)
        elif isinstance(value, (list, tuple)):
            names += [v for v in value if isinstance(v, str)]
        elif isinstance(value, dict):
            names += [k for k in value if isinstance(k, str)]
    return names


async def _check_route(
    settings: PolystoreSettings, name: str, route: RouteConfig, failed: set[str]
) -> RouteCheck:
    used = route_backends(route)
    result = RouteCheck(name, used, ok=False)
    down = [b for b in used if b in failed]
    if down:
        result.detail = f"not checked: backend {', '.join(down)} failed"
        return result
    only = PolystoreSettings.model_construct(
        backends={b: settings.backends[b] for b in used}, routes={name: route}
    )
    try:
        async with Polystore(only) as ps:
            info = ps.routes[name]
        needs = ", ".join(info.requires.names()) or "nothing"
        result.ok = True
        result.detail = f"{info.plugin} namespace {info.namespace!r}; requires {needs}"
    except RouteRequirementError as exc:
        plugin = settings.backends[used[0]].plugin if used else ""
        result.detail = redact_text(exc.message)
        result.fix = fix_for_route(name, plugin, tuple(exc.missing))
    except (PolystoreError, OSError) as exc:
        result.detail = f"{type(exc).__name__}: {redact_text(str(exc))}"
    return result


def _show(ui: Ui, ok: bool, what: str, detail: str, fix: str) -> None:
    mark = ("[ok  ] ", "green") if ok else ("[FAIL] ", "bold red")
    ui.parts(mark, (what, "bold"), (f"  {detail}" if detail else "", None))
    if fix:
        ui.parts(("       fix: ", "yellow"), (fix, None))


@command("check")
def check(ui: Ui) -> int:
    """Ping every backend and check every route's requirements.

    Every backend is tried, even after one fails; each failure comes with how to fix
    it. Exit status 0 when everything passed, 1 otherwise.
    """
    settings = ui.settings()
    source = ui.source(settings)
    resolved = settings.resolved()
    manager = PluginManager()

    async def run() -> tuple[list[BackendCheck], list[RouteCheck]]:
        total = len(resolved.backends)
        with ui.progress("checking backends", total=total) as bar:

            async def one(name: str, config: BackendConfig) -> BackendCheck:
                done = await _check_backend(manager, name, config)
                bar.advance()
                return done

            backends = await asyncio.gather(*(one(n, c) for n, c in resolved.backends.items()))
        failed = {b.name for b in backends if not b.ok}
        routes = []
        with ui.progress("checking routes", total=len(resolved.routes)) as bar:
            for name, route in resolved.routes.items():
                routes.append(await _check_route(resolved, name, route, failed))
                bar.advance()
        return list(backends), routes

    backends, routes = ui.run(run())
    ok = all(b.ok for b in backends) and all(r.ok for r in routes)
    if ui.json:
        report: dict[str, Any] = {
            "ok": ok,
            "configuration": source,
            "backends": {b.name: asdict(b) for b in backends},
            "routes": {r.name: asdict(r) for r in routes},
        }
        ui.emit(report)
        return 0 if ok else 1
    ui.parts(("configuration: ", "bold"), (source, None))
    for b in backends:
        detail = f"{b.latency_ms:.2f} ms  {b.detail}" if b.ok else b.detail
        _show(ui, b.ok, f"backend {b.name} ({b.plugin})", detail, b.fix)
    for r in routes:
        _show(ui, r.ok, f"route {r.name} -> {', '.join(r.backends)}", r.detail, r.fix)
    if ok:
        ui.line("all checks passed", style="bold green")
    else:
        failures = sum(not b.ok for b in backends) + sum(not r.ok for r in routes)
        ui.line(f"check failed: {failures} problem(s)", style="bold red")
    return 0 if ok else 1
