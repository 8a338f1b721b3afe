"""``polystore maintain``: the periodic upkeep backends ask for (e.g. partitions by month)."""

from __future__ import annotations

from typing import Any

from polystore.cli._group import command
from polystore.cli._ui import Ui

__all__ = ["maintain"]


def _as_dict(report: Any) -> dict[str, list[str]]:
    return {
        name: list(getattr(report, name))
        for name in ("created", "detached")
        if isinstance(getattr(report, name, None), list)
    }


@command("maintain")
def maintain(ui: Ui) -> int:
    """Run every backend's maintenance once: create the partitions that will be needed
    soon and detach the expired ones (PostgreSQL tables partitioned by month).

    Run it daily (cron, a scheduled job): it is idempotent, and detached partitions stay
    as plain tables to archive or drop.
    """

    async def run() -> int:
        done: dict[str, dict[str, list[str]]] = {}
        async with ui.connect() as ps:
            with ui.progress("maintaining"):
                for name, backend in ps.backends.items():
                    upkeep = getattr(backend, "maintain", None)
                    if callable(upkeep):
                        done[name] = _as_dict(await upkeep())
        if ui.json:
            ui.emit({"backends": done})
            return 0
        if not done:
            ui.line("no backend has maintenance to do")
        for name, report in done.items():
            changes = [(what, table) for what, tables in report.items() for table in tables]
            if not changes:
                ui.line(f"{name}: nothing to do")
            for what, table in changes:
                ui.line(f"{name}: {what} {table}")
        return 0

    return ui.run(run())
