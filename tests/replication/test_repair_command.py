"""``polystore repair ROUTE``: the repair, JSON and text output, errors."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from polystore import Polystore
from polystore.replication import RepairReport
from polystore.replication.command import describe

CONFIG = """
[backends.a]
plugin = "sqlite"
path = "a.db"

[backends.b]
plugin = "sqlite"
path = "b.db"

[backends.c]
plugin = "sqlite"
path = "c.db"

[routes.plain]
backend = "a"

[routes.carts]
replicas = ["a", "b", "c"]
"""
VALUES = {f"cart:{i}": {"i": i} for i in range(300)}


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("POLYSTORE_CONFIG", raising=False)
    for name in list(os.environ):
        if name.startswith(("POLYSTORE_BACKENDS", "POLYSTORE_ROUTES")):
            monkeypatch.delenv(name)
    (tmp_path / "polystore.toml").write_text(CONFIG)
    asyncio.run(_fill_then_lose_some_on_c())
    return tmp_path


async def _fill_then_lose_some_on_c() -> None:
    async with Polystore.from_settings() as ps:
        await ps.route("carts").save_many(VALUES)
        await ps.replicated("carts").aclose()
        await ps.backends["c"].namespace("carts").delete_many([f"cart:{i}" for i in range(40)])


async def _held_by_c() -> int:
    async with Polystore.from_settings() as ps:
        return len([k async for k in ps.backends["c"].namespace("carts").scan()])


def polystore(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "polystore.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=cwd,
    )


def test_repair_copies_the_missing_keys_and_reports_them_as_json(workdir: Path) -> None:
    done = polystore("repair", "carts", "--json", cwd=workdir)

    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["ok"] is True
    assert (report["scanned"], report["repaired"], report["copies"]) == (300, 40, 40)
    assert report["replicas"] == ["a", "b", "c"]
    assert asyncio.run(_held_by_c()) == 300


def test_repair_prints_a_summary_and_a_second_run_finds_nothing(workdir: Path) -> None:
    first = polystore("repair", "carts", cwd=workdir)
    second = polystore("repair", "carts", "--batch-size", "7", cwd=workdir)

    assert first.returncode == 0, first.stderr
    assert "300 keys checked" in first.stdout
    assert "40 keys were missing or stale" in first.stdout
    assert second.returncode == 0, second.stderr
    assert "every replica already agreed" in second.stdout


def test_repair_of_a_route_that_is_not_replicated_fails_clearly(workdir: Path) -> None:
    done = polystore("repair", "plain", cwd=workdir)

    assert done.returncode == 1
    assert "not replicated" in done.stderr


def test_a_terminal_shows_the_live_progress_and_the_summary(
    workdir: Path, run_in_terminal: Callable[..., str]
) -> None:
    shown = run_in_terminal("repair", "carts", "--batch-size", "20", cwd=workdir)
    assert "repairing carts" in shown  # the live line (its details refresh 10 times a second)
    assert "300 keys checked" in shown


def test_the_live_line_names_the_replica_being_scanned_and_the_counts() -> None:
    report = RepairReport(("a", "b"), scanned=1200, repaired=35, copies=40, reaped=2, current="b")
    assert describe(report) == "b: 1,200 keys · 35 repaired · 2 reaped"
