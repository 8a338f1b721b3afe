"""What ``polystore repair ROUTE`` does, apart from drawing it: repair, then report.

The CLI calls :func:`repair_route` with a callback that receives the
:class:`~polystore.replication.RepairReport` so far after every batch, and prints
:func:`summary_lines` or :func:`report_as_json` at the end.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from polystore.replication.repair import RepairReport

if TYPE_CHECKING:
    from polystore.app import Polystore

__all__ = ["describe", "repair_route", "report_as_json", "summary_lines"]


async def repair_route(
    ps: Polystore,
    route: str,
    *,
    progress: Callable[[RepairReport], object] | None = None,
    batch_size: int = 500,
) -> tuple[RepairReport, float]:
    """Run one anti-entropy pass on the replicated ``route``.

    Returns:
        The report and the seconds it took.

    Raises:
        ConfigurationError: No such route, or it is not replicated.
        StoreUnavailableError: A replica did not answer (named in the message).
    """
    store = ps.replicated(route)
    started = time.monotonic()
    report = await store.repair(progress, batch_size=batch_size)
    return report, time.monotonic() - started


def describe(report: RepairReport) -> str:
    """``r2: 1,200 keys · 35 repaired · 2 reaped``: one line for a progress display."""
    where = f"{report.current}: " if report.current else ""
    return (
        f"{where}{report.scanned:,} keys · {report.repaired:,} repaired · {report.reaped:,} reaped"
    )


def summary_lines(route: str, report: RepairReport, seconds: float) -> list[str]:
    """The summary printed when a repair ends."""
    replicas = ", ".join(report.replicas)
    lines = [
        f"repaired route {route!r} over {len(report.replicas)} replicas ({replicas}) "
        f"in {seconds:.1f} s",
        f"  {report.scanned:,} keys checked",
        f"  {report.repaired:,} keys were missing or stale on some replica "
        f"({report.copies:,} copies written)",
        f"  {report.reaped:,} tombstones reaped",
    ]
    if not report.repaired:
        lines.append("  every replica already agreed")
    return lines


def report_as_json(route: str, report: RepairReport, seconds: float) -> dict[str, Any]:
    """The report as a JSON object."""
    return {"ok": True, "route": route, "seconds": round(seconds, 3), **asdict(report)}
