"""``polystore demo``: a session, a profile and a transaction through the routes, then gone.

Every key the demo writes carries a fresh random suffix and is deleted at the end (also
when a step fails), so running it twice gives the same output and leaves nothing behind.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable
from decimal import Decimal
from typing import Any, TypeVar

import click

from polystore.app import Polystore
from polystore.cli._group import command
from polystore.cli._ui import Ui
from polystore.cli.check import route_backends
from polystore.idempotency import IDEMPOTENCY_PREFIX
from polystore.models import Session, Transaction, UserProfile
from polystore.settings import PolystoreSettings

__all__ = ["EMBEDDED_PLUGINS", "demo", "non_embedded_backends"]

T = TypeVar("T")
EMBEDDED_PLUGINS = frozenset({"sqlite", "memory"})
"""Plugins whose data lives in this process or a local file: the demo writes there freely."""
DEMO_ROUTES = ("sessions", "profiles", "transactions")


def non_embedded_backends(settings: PolystoreSettings) -> list[str]:
    """Backends of the demo's routes that are servers shared with others."""
    resolved = settings.resolved()
    names = {b for n, r in resolved.routes.items() if n in DEMO_ROUTES for b in route_backends(r)}
    return sorted(n for n in names if resolved.backends[n].plugin not in EMBEDDED_PLUGINS)


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


async def _demo(ps: Polystore) -> dict[str, Any]:
    steps = _Steps(ps)
    run = uuid.uuid4().hex[:8]
    session = Session(id=f"session-{run}", user_id=f"user-{run}", data={"cart": ["book"]})
    payment = Transaction(
        account_id=f"acct-{run}",
        amount=Decimal("42.10"),
        currency="EUR",
        direction="debit",
        idempotency_key=f"order-{run}",
    )
    try:
        await steps.run("save session (ttl 900 s)", "sessions", ps.sessions.save(session, ttl=900))
        entry = await steps.run("read session", "sessions", ps.sessions.get_entry(session.id))
        if entry is not None and entry.expires_at is not None:
            steps.note(f", expires {entry.expires_at.isoformat(timespec='seconds')}")

        email = f"{run}@example.com"
        profile = UserProfile(user_id=session.user_id, email=email, display_name="Ada")
        await steps.run("save profile", "profiles", ps.profiles.save(profile))
        found = await steps.run("find profile by email", "profiles", ps.profiles.find(email=email))
        steps.note(f": {len(found)} match")

        label = "record transaction 42.10 EUR"
        _, created = await steps.run(label, "transactions", ps.transactions.record(payment))
        steps.note(f" (created={created})")
        retry = payment.model_copy(update={"id": uuid.uuid4().hex})
        label = "retry with the same idempotency key"
        stored, again = await steps.run(label, "transactions", ps.transactions.record(retry))
        same = stored.id == payment.id and stored.amount == payment.amount
        steps.note(f" (created={again}, same record={same})")
        ok = entry is not None and len(found) == 1 and created and same and not again
    finally:
        await ps.route("sessions").delete(session.id)
        await ps.route("profiles").delete(session.user_id)
        marker = IDEMPOTENCY_PREFIX + payment.idempotency_key
        await ps.route("transactions").delete_many([payment.id, marker])
    steps.rows.append({"step": "delete everything the demo wrote", "route": "", "store": ""})
    return {"ok": ok, "steps": steps.rows}


@command("demo")
@click.option(
    "--yes",
    is_flag=True,
    help="Also run against configured server backends (writes, then deletes, demo records).",
)
def demo(ui: Ui, yes: bool) -> int:
    """Save and read a session, a profile and a transaction, then delete them.

    With no configuration this uses the embedded SQLite file under ./.polystore/. It
    refuses to touch configured server backends (Redis, MongoDB, PostgreSQL, ...) unless
    --yes is given.
    """
    settings = ui.settings()
    servers = non_embedded_backends(settings)
    if servers and not yes:
        ui.fail(
            f"demo would write test records into backend(s) {', '.join(servers)} "
            f"({ui.source(settings)}); they are deleted afterwards. Re-run with --yes to "
            "allow it, or run it without a configuration to use the embedded SQLite file."
        )
        return 2

    async def run() -> dict[str, Any]:
        async with ui.connect(settings) as ps:
            with ui.progress("running the demo"):
                return await _demo(ps)

    report = ui.run(run())
    if ui.json:
        ui.emit(report)
        return 0 if report["ok"] else 1
    ui.line("polystore demo", style="bold")
    for step in report["steps"]:
        if step["store"]:
            ui.parts(
                (f"  {step['step']:<66} ", None),
                (f"-> {step['store']:<32} ", "cyan"),
                (f"{step['ms']:7.2f} ms", "dim"),
            )
        else:
            ui.line(f"  {step['step']}")
    ui.line(*(("demo ok", "bold green") if report["ok"] else ("demo FAILED", "bold red")))
    return 0 if report["ok"] else 1
