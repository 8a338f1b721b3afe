"""``polystore bench``: throughput of the configured routes through the public API."""

from __future__ import annotations

from dataclasses import asdict

import click

from polystore import bench as workloads
from polystore.cli._group import command
from polystore.cli._ui import Ui

__all__ = ["bench"]


@command("bench")
@click.option("--smoke", is_flag=True, help="A few operations per workload (seconds, not minutes).")
@click.option(
    "--rounds", type=click.IntRange(min=1), default=3, show_default=True, help="Measured rounds."
)
def bench(ui: Ui, smoke: bool, rounds: int) -> int:
    """Measure ops/s of every configured route.

    Keys are written under a random prefix and deleted afterwards.
    """

    async def run() -> list[workloads.BenchResult]:
        async with ui.connect() as ps:
            stores = {name: ps.route(name) for name in ps.routes}
            total = len(workloads.SINGLE_WORKLOADS) + 1
            with ui.progress("benchmarking", total=total) as bar:

                def step(workload: str) -> None:
                    bar.update(description=f"benchmarking: {workload}")
                    bar.advance()

                return await workloads.run_store_benchmarks(
                    stores, smoke=smoke, rounds=rounds, progress=step
                )

    results = ui.run(run())
    if ui.json:
        ui.emit([asdict(r) for r in results])
    else:
        for line in workloads.format_table(results).splitlines():
            ui.line(line)
    return 0
