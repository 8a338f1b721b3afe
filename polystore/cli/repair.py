"""``polystore repair ROUTE``: bring every replica of a replicated route in line."""

from __future__ import annotations

import click

from polystore.cli._group import command
from polystore.cli._ui import Ui
from polystore.replication.command import describe, repair_route, report_as_json, summary_lines
from polystore.replication.repair import RepairReport

__all__ = ["repair"]


@command("repair")
@click.argument("route")
@click.option(
    "--batch-size", type=click.IntRange(1, 10_000), default=500, show_default=True,
    help="Keys read from every replica at a time.",
)  # fmt: skip
def repair(ui: Ui, route: str, batch_size: int) -> int:
    """Copy the newest state of every key of the replicated ROUTE to every replica.

    Needs every replica to answer. Safe while the application runs, and resumable: run
    it again after an interruption.
    """

    async def run() -> int:
        async with ui.connect() as ps:
            with ui.progress(f"repairing {route}") as bar:

                def show(report: RepairReport) -> None:
                    bar.update(
                        completed=report.scanned,
                        description=f"repairing {route}: {describe(report)}",
                    )

                report, seconds = await repair_route(
                    ps, route, progress=show, batch_size=batch_size
                )
        if ui.json:
            ui.emit(report_as_json(route, report, seconds))
        else:
            for line in summary_lines(route, report, seconds):
                ui.line(line)
        return 0

    return ui.run(run())
