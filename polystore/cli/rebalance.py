"""``polystore rebalance ROUTE``: move every key of a sharded route to its owner."""

from __future__ import annotations

import click

from polystore.cli._group import command
from polystore.cli._ui import Ui
from polystore.sharding.command import (
    RebalanceProgress,
    rebalance_route,
    report_as_json,
    summary_lines,
)

__all__ = ["rebalance"]


@command("rebalance")
@click.argument("route")
@click.option("--dry-run", is_flag=True, help="Count the keys that would move, and where.")
def rebalance(ui: Ui, route: str, dry_run: bool) -> int:
    """Move every key of the sharded ROUTE to the shard that owns it.

    Safe while the application runs, and resumable: run it again after an interruption.
    """

    async def run() -> int:
        async with ui.connect() as ps:
            sharded = ps.sharded(route)
            with ui.progress(f"counting the keys of {route}"):
                total = await sharded.count_keys()
            with ui.progress(f"rebalancing {route}", total=total) as bar:

                def show(state: RebalanceProgress) -> None:
                    bar.update(
                        completed=state.scanned,
                        description=f"rebalancing {route}: {state.describe()}",
                    )

                report = await rebalance_route(
                    ps, route, dry_run=dry_run, total=total, progress=show
                )
        if ui.json:
            ui.emit(report_as_json(route, report))
        else:
            for line in summary_lines(route, report):
                ui.line(line)
        return 0

    return ui.run(run())
