"""Ratios, the machine description and the printed / JSON report of a benchmark run."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import statistics
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from benchmarks.counters import describe
from benchmarks.libraries import POLYSTORE, RAW
from benchmarks.suite import BATCH_WORKLOADS, Section
from polystore.bench import BenchResult

RAW_TARGETS = {
    "save": 0.90,
    "get": 0.90,
    "get_concurrent": 0.90,
    "save_concurrent": 0.90,
    "save_batch": 0.85,
    "get_batch": 0.85,
}
"""Least polystore/raw ratio aimed for; against a peer the aim is above 1.0 everywhere."""

PACKAGES = (
    "polystore-sdk", "polystore-redis", "polystore-postgres", "polystore-mongodb",
    "redis", "hiredis", "asyncpg", "pymongo", "aiosqlite", "orjson",
    "py-key-value-aio", "aiocache", "SecantusDB",
)  # fmt: skip


@dataclass(frozen=True)
class Ratio:
    """polystore's throughput divided by another library's, per round.

    Attributes:
        target: Backend (section) name.
        workload: Workload name.
        versus: The other library.
        median: Median of the per-round ratios.
        low: First quartile of the per-round ratios.
        high: Third quartile of the per-round ratios.
        goal: The ratio aimed for, or None.
    """

    target: str
    workload: str
    versus: str
    median: float
    low: float
    high: float
    goal: float | None

    @property
    def met(self) -> bool | None:
        """Whether the median reaches the goal (None without a goal)."""
        return None if self.goal is None else self.median >= self.goal


def ratios(results: Sequence[BenchResult]) -> list[Ratio]:
    """polystore/raw and polystore/peer ratios, paired round by round."""
    by_key = {(r.target, r.workload, r.library): r for r in results}
    found = []
    for r in results:
        mine = by_key.get((r.target, r.workload, POLYSTORE))
        if r.library == POLYSTORE or mine is None or not r.rounds or not mine.rounds:
            continue
        per_round = [a / b for a, b in zip(mine.rounds, r.rounds, strict=True) if b > 0]
        if not per_round:
            continue
        goal = RAW_TARGETS.get(r.workload) if r.library == RAW else 1.0
        low, _, high = (
            statistics.quantiles(per_round, n=4, method="inclusive")
            if len(per_round) > 1
            else (per_round[0],) * 3
        )
        found.append(
            Ratio(r.target, r.workload, r.library, statistics.median(per_round), low, high, goal)
        )
    return found


def machine() -> dict[str, str]:
    """CPU model, cores, load, OS and Python of this machine."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "?"
    return {
        "cpu": cpu,
        "cores": str(os.cpu_count()),
        "load average at start": load,
        "os": platform.platform(),
        "python": sys.version.split()[0] + f" ({platform.python_implementation()})",
    }


def versions() -> dict[str, str]:
    """Installed versions of polystore, the drivers and the peers."""
    return {name: _version(name) for name in PACKAGES}


def _version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _rate(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:,.1f}"


def _ratio(r: Ratio) -> str:
    mark = "" if r.met is None else (" ✓" if r.met else " ✗")
    return f"{r.median:.2f} ({r.low:.2f}-{r.high:.2f}){mark}"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(header, widths, strict=True)) + " |"]
    lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    lines += [
        "| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |"
        for row in rows
    ]
    return lines


def section_lines(section: Section) -> list[str]:
    """The Markdown of one section: ops/s per library, ratios, batch command counts."""
    title = f"### {section.backend}" + (f" — {section.where}" if section.where else "")
    if section.status:
        return [title, "", section.status, ""]
    libraries = list(dict.fromkeys(r.library for r in section.results))
    others = [lib for lib in libraries if lib != POLYSTORE]
    table_ratios = {(r.workload, r.versus): r for r in ratios(section.results)}
    header = ["workload", *(f"{lib} ops/s" for lib in libraries)]
    header += [f"polystore/{lib}" for lib in others]
    rows = []
    for workload in dict.fromkeys(r.workload for r in section.results):
        row = [workload]
        for lib in libraries:
            result = next(r for r in section.results if r.workload == workload and r.library == lib)
            row.append(_rate(result.median) if result.rounds else result.note)
        for lib in others:
            ratio = table_ratios.get((workload, lib))
            row.append(_ratio(ratio) if ratio else "—")
        rows.append(row)
    lines = [title, "", *_table(header, rows), ""]
    if section.cpu:
        lines += [f"Client CPU time per op in µs ({section.backend}; lower is better):", ""]
        cpu_rows = [
            [workload, *(f"{per_lib[lib]:.1f}" if lib in per_lib else "—" for lib in libraries)]
            for workload, per_lib in section.cpu.items()
        ]
        lines += [*_table(["workload", *libraries], cpu_rows), ""]
    if section.counters:
        lines += [f"Server commands caused by one batch of 100 ({section.backend}):", ""]
        count_rows = [
            [workload, *(describe(section.counters[workload].get(lib)) for lib in libraries)]
            for workload in BATCH_WORKLOADS
        ]
        lines += [*_table(["batch call", *libraries], count_rows), ""]
    return lines


def render(sections: Sequence[Section], meta: dict[str, Any]) -> str:
    """The whole report as Markdown."""
    lines = [f"Command: `{meta['command']}`", ""]
    lines += [f"- {key}: {value}" for key, value in meta["machine"].items()]
    lines.append("- packages: " + ", ".join(f"{k} {v}" for k, v in meta["versions"].items()))
    lines += [f"- rounds: {meta['rounds']} (after one warm-up), smoke: {meta['smoke']}", ""]
    lines += [
        "ops/s: each library's median over the rounds. polystore/X: the median of the "
        "per-round ratios (interquartile range); ✓ or ✗: whether the median reaches the "
        "target (raw: 0.90 single calls, 0.85 batches; peers: above 1.00).",
        "",
    ]
    for section in sections:
        lines += section_lines(section)
    return "\n".join(lines)


def as_json(sections: Sequence[Section], meta: dict[str, Any]) -> dict[str, Any]:
    """Everything measured, for ``--json``."""
    return {
        **meta,
        "sections": [
            {
                "backend": s.backend,
                "status": s.status,
                "where": s.where,
                "results": [{**asdict(r), "median": r.median} for r in s.results],
                "ratios": [asdict(r) for r in ratios(s.results)],
                "counters": s.counters,
                "cpu_us_per_op": s.cpu,
            }
            for s in sections
        ],
    }
