"""The ``polystore`` command: ``plugins``, ``check``, ``demo``, ``bench``."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
import uuid
from collections.abc import Awaitable, Sequence
from dataclasses import asdict
from decimal import Decimal
from typing import Any, TypeVar

from polystore.app import Polystore
from polystore.errors import PolystoreError
from polystore.models import Session, Transaction, UserProfile
from polystore.plugins import PluginManager
from polystore.redact import redact_text
from polystore.settings import load_settings

__all__ = ["main"]

T = TypeVar("T")


def _emit(args: argparse.Namespace, data: Any, text: str) -> None:
    if args.json:
        print(json.dumps(data, indent=2, default=str))
    else:
        print(text)


def cmd_plugins(args: argparse.Namespace) -> int:
    """List every backend plugin, its capabilities and its distribution."""
    manager = PluginManager()
    rows: list[dict[str, Any]] = [
        {
            "backend": spec.name,
            "capabilities": list(spec.capabilities.names()),
            "plugin": spec.plugin,
            "distribution": spec.distribution,
            "description": spec.description,
        }
        for spec in manager.backends
    ]
    versions = {info.name: info.version for info in manager.plugins()}
    lines = [f"{'backend':<10} {'distribution':<22} capabilities"]
    for row in rows:
        dist = f"{row['distribution']} {versions.get(row['plugin'], '')}".strip()
        lines.append(f"{row['backend']:<10} {dist:<22} {', '.join(row['capabilities'])}")
        if row["description"]:
            lines.append(f"{'':<10} {'':<22} {row['description']}")
    _emit(args, {"backends": rows}, "\n".join(lines))
    return 0


async def _check(args: argparse.Namespace) -> tuple[int, dict[str, Any], list[str]]:
    report: dict[str, Any] = {"ok": False, "backends": {}, "routes": {}}
    lines: list[str] = []
    settings = load_settings(args.config)
    async with Polystore(settings) as ps:
        health = await ps.health()
        ok = True
        for name, result in health.items():
            ok &= result.ok
            report["backends"][name] = {
                "ok": result.ok,
                "latency_ms": round(result.latency_ms, 3),
                "detail": result.detail,
            }
            mark = "ok  " if result.ok else "FAIL"
            lines.append(f"[{mark}] backend {name}: {result.latency_ms:.2f} ms  {result.detail}")
        for name, info in ps.routes.items():
            report["routes"][name] = {
                "backend": info.backend,
                "plugin": info.plugin,
                "requires": list(info.requires.names()),
                "capabilities": list(info.capabilities.names()),
            }
            needs = ", ".join(info.requires.names()) or "nothing"
            lines.append(f"[ok  ] route {name} -> {info.backend} ({info.plugin}); requires {needs}")
        report["ok"] = ok
    return (0 if ok else 1), report, lines


def cmd_check(args: argparse.Namespace) -> int:
    """Validate configuration, ping every backend and check every route's requirements."""
    try:
        code, report, lines = asyncio.run(_check(args))
    except PolystoreError as exc:
        message = redact_text(str(exc))
        _emit(
            args,
            {"ok": False, "error": type(exc).__name__, "message": message},
            f"[FAIL] {type(exc).__name__}: {message}",
        )
        return 1
    _emit(args, report, "\n".join([*lines, "all checks passed" if code == 0 else "check failed"]))
    return code


class _Steps:
    """Runs demo steps, timing each and noting which store served it."""

    def __init__(self, ps: Polystore) -> None:
        self.ps = ps
        self.rows: list[dict[str, Any]] = []

    async def run(self, label: str, route: str, call: Awaitable[T]) -> T:
        started = time.perf_counter()
        result = await call
        info = self.ps.routes[route]
        self.rows.append(
            {
                "step": label,
                "route": route,
                "store": f"{info.backend}/{info.namespace} ({info.plugin})",
                "ms": (time.perf_counter() - started) * 1000,
            }
        )
        return result

    def note(self, suffix: str) -> None:
        self.rows[-1]["step"] += suffix


async def _demo(args: argparse.Namespace) -> dict[str, Any]:
    async with Polystore(load_settings(args.config)) as ps:
        steps = _Steps(ps)
        run = uuid.uuid4().hex[:8]
        session = Session(id=f"session-{run}", user_id=f"user-{run}", data={"cart": ["book"]})
        await steps.run("save session (ttl 900 s)", "sessions", ps.sessions.save(session, ttl=900))
        entry = await steps.run("read session", "sessions", ps.sessions.get_entry(session.id))
        if entry is not None and entry.expires_at is not None:
            steps.note(f", expires {entry.expires_at.isoformat(timespec='seconds')}")

        email = f"{run}@example.com"
        profile = UserProfile(user_id=session.user_id, email=email, display_name="Ada")
        await steps.run("save profile", "profiles", ps.profiles.save(profile))
        found = await steps.run("find profile by email", "profiles", ps.profiles.find(email=email))
        steps.note(f": {len(found)} match")

        payment = Transaction(
            account_id=f"acct-{run}",
            amount=Decimal("42.10"),
            currency="EUR",
            direction="debit",
            idempotency_key=f"order-{run}",
        )
        label = "record transaction 42.10 EUR"
        _, created = await steps.run(label, "transactions", ps.transactions.record(payment))
        steps.note(f" (created={created})")
        retry = payment.model_copy(update={"id": uuid.uuid4().hex})
        label = "retry with the same idempotency key"
        stored, again = await steps.run(label, "transactions", ps.transactions.record(retry))
        same = stored.id == payment.id and stored.amount == payment.amount
        steps.note(f" (created={again}, same record={same})")
        ok = entry is not None and len(found) == 1 and created and same and not again
        return {"ok": ok, "steps": steps.rows}


def cmd_demo(args: argparse.Namespace) -> int:
    """Save and read a session, a profile and a transaction through the routes."""
    try:
        report = asyncio.run(_demo(args))
    except PolystoreError as exc:
        print(f"demo failed: {type(exc).__name__}: {redact_text(str(exc))}", file=sys.stderr)
        return 1
    lines = ["polystore demo"]
    lines += [
        f"  {step['step']:<70} -> {step['store']:<32} {step['ms']:7.2f} ms"
        for step in report["steps"]
    ]
    lines.append("demo ok" if report["ok"] else "demo FAILED")
    _emit(args, report, "\n".join(lines))
    return 0 if report["ok"] else 1


def cmd_bench(args: argparse.Namespace) -> int:
    """Benchmark the configured routes through the public API."""
    from polystore import bench

    async def run() -> str:
        async with Polystore(load_settings(args.config)) as ps:
            stores = {name: ps.route(name) for name in ps.routes}
            results = await bench.run_store_benchmarks(stores, smoke=args.smoke, rounds=args.rounds)
            if args.json:
                return json.dumps([asdict(r) for r in results], indent=2, default=str)
            return bench.format_table(results)

    try:
        print(asyncio.run(run()))
    except PolystoreError as exc:
        print(f"bench failed: {type(exc).__name__}: {redact_text(str(exc))}", file=sys.stderr)
        return 1
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="polystore", description=__doc__)
    parser.add_argument(
        "--config", help="TOML file (default: $POLYSTORE_CONFIG or ./polystore.toml)"
    )
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("plugins", help=cmd_plugins.__doc__).set_defaults(func=cmd_plugins)
    sub.add_parser("check", help=cmd_check.__doc__).set_defaults(func=cmd_check)
    sub.add_parser("demo", help=cmd_demo.__doc__).set_defaults(func=cmd_demo)
    bench_parser = sub.add_parser("bench", help=cmd_bench.__doc__)
    bench_parser.add_argument("--smoke", action="store_true", help="a few operations only")
    bench_parser.add_argument("--rounds", type=int, default=3)
    bench_parser.set_defaults(func=cmd_bench)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
