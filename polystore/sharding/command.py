"""What ``polystore rebalance ROUTE`` does, apart from drawing it: count, move, report.

The CLI calls :func:`rebalance_route` with a callback that receives a
:class:`RebalanceProgress` after every batch, and prints :func:`summary_lines` or
:func:`report_as_json` at the end.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from polystore.sharding.rebalance import RebalanceReport

if TYPE_CHECKING:
    from polystore.app import Polystore

__all__ = ["RebalanceProgress", "rebalance_route", "report_as_json", "summary_lines"]


@dataclass(frozen=True)
class RebalanceProgress:
    """Where a running rebalance is.

    Attributes:
        scanned: Keys listed so far.
        moved: Keys moved so far (that would move, on a dry run).
        total: Keys to scan, counted before starting (``None`` if not counted).
        rate: Keys scanned per second.
        eta: Seconds left at this rate (``None`` without a total or a rate).
    """

    scanned: int
    moved: int
    total: int | None
    rate: float
    eta: float | None

    @classmethod
    def of(cls, report: RebalanceReport, total: int | None) -> RebalanceProgress:
        """The progress a report shows, against ``total`` keys."""
        rate = report.rate
        eta = None
        if total is not None and rate > 0:
            eta = max(total - report.scanned, 0) / rate
        return cls(report.scanned, report.moved, total, rate, eta)

    def describe(self) -> str:
        """``moved 120 · 850 keys/s · ETA 3 s``."""
        eta = "" if self.eta is None else f" · ETA {self.eta:,.0f} s"
        return f"moved {self.moved:,} · {self.rate:,.0f} keys/s{eta}"


async def rebalance_route(
    ps: Polystore,
    route: str,
    *,
    dry_run: bool = False,
    total: int | None = None,
    progress: Callable[[RebalanceProgress], None] | None = None,
) -> RebalanceReport:
    """Rebalance the sharded ``route`` of a started ``ps``.

    Args:
        ps: A started :class:`~polystore.Polystore`.
        route: The sharded route's name.
        dry_run: Count what would move, change nothing.
        total: Keys to scan, if already counted; counted first when a ``progress``
            callback is given without it.
        progress: Called before the first batch and after every batch.

    Raises:
        ConfigurationError: No such route, or it is not sharded.
        StoreUnavailableError: A shard did not answer (what moved stays moved; run again).
    """
    sharded = ps.sharded(route)
    if total is None and progress is not None:
        total = await sharded.count_keys()
    if progress is not None:
        progress(RebalanceProgress(0, 0, total, 0.0, None))

    def report_progress(report: RebalanceReport) -> None:
        if progress is not None:
            progress(RebalanceProgress.of(report, total))

    return await sharded.rebalance(progress=report_progress, dry_run=dry_run)


def report_as_json(route: str, report: RebalanceReport) -> dict[str, Any]:
    """The report as JSON."""
    return {
        "route": route,
        "dry_run": report.dry_run,
        "scanned": report.scanned,
        "moved": report.moved,
        "moves": dict(report.moves),
        "kept_newer": report.kept_newer,
        "unplaced": report.unplaced,
        "elapsed": round(report.elapsed, 3),
        "rate": round(report.rate, 1),
        "epoch": report.epoch,
    }


def summary_lines(route: str, report: RebalanceReport) -> list[str]:
    """The report in a few lines of text."""
    verb = "would move" if report.dry_run else "moved"
    lines = [
        f"{route}: scanned {report.scanned:,} keys in {report.elapsed:.1f} s "
        f"({report.rate:,.0f} keys/s); {verb} {report.moved:,}"
    ]
    lines += [f"  {way}: {count:,}" for way, count in sorted(report.moves.items())]
    if report.kept_newer:
        lines.append(
            f"  stale copies dropped (the owner held a newer write): {report.kept_newer:,}"
        )
    if report.unplaced:
        lines.append(f"  keys outside every range, left in place: {report.unplaced:,}")
    if not report.dry_run:
        lines.append(f"  shard map epoch {report.epoch}: every key is on its owner")
    return lines
