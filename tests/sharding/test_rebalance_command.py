"""``polystore rebalance ROUTE``: dry run, the move, JSON and text output, progress."""

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

[routes.profiles]
shards = {shards}
shard_map_refresh = 0.1
"""
VALUES = {f"user:{i}": {"i": i} for i in range(400)}


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("POLYSTORE_CONFIG", raising=False)
    for name in list(os.environ):
        if name.startswith(("POLYSTORE_BACKENDS", "POLYSTORE_ROUTES")):
            monkeypatch.delenv(name)
    (tmp_path / "polystore.toml").write_text(CONFIG.format(shards='["a", "b"]'))
    asyncio.run(_fill())
    (tmp_path / "polystore.toml").write_text(CONFIG.format(shards='["a", "b", "c"]'))
    return tmp_path


async def _fill() -> None:
    async with Polystore.from_settings() as ps:
        await ps.route("profiles").save_many(VALUES)


async def _state() -> tuple[list[object], int, bool]:
    async with Polystore.from_settings() as ps:
        sharded = ps.sharded("profiles")
        values = await ps.route("profiles").get_many(list(VALUES))
        on_c = len([k async for k in sharded.shards["c"].scan()]) if "c" in sharded.shards else 0
        return values, on_c, sharded.shard_map.migrating


def polystore(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "polystore.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=cwd,
    )


def test_a_dry_run_counts_the_moves_to_the_new_shard_and_writes_nothing(workdir: Path) -> None:
    done = polystore("rebalance", "profiles", "--dry-run", "--json", cwd=workdir)

    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["dry_run"] is True
    assert report["scanned"] == len(VALUES)
    assert 0.2 * len(VALUES) <= report["moved"] <= 0.45 * len(VALUES)
    assert set(report["moves"]) <= {"a->c", "b->c"}
    values, on_c, _ = asyncio.run(_state())
    assert on_c == 0
    assert values == list(VALUES.values())


def test_rebalance_moves_the_keys_and_reports_them(workdir: Path) -> None:
    planned = json.loads(
        polystore("rebalance", "profiles", "--dry-run", "--json", cwd=workdir).stdout
    )

    done = polystore("rebalance", "profiles", "--json", cwd=workdir)

    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["scanned"] == len(VALUES)  # a moved key is not listed twice
    assert report["moved"] == planned["moved"]
    assert report["moves"] == planned["moves"]
    values, on_c, migrating = asyncio.run(_state())
    assert values == list(VALUES.values())
    assert on_c == report["moved"]
    assert migrating is False
    again = polystore("rebalance", "profiles", cwd=workdir)
    assert again.returncode == 0, again.stderr
    assert "moved 0" in again.stdout
    assert "every key is on its owner" in again.stdout


def test_a_route_that_is_not_sharded_is_refused(workdir: Path) -> None:
    done = polystore("rebalance", "plain", cwd=workdir)
    assert done.returncode == 1
    assert "not sharded" in done.stderr


def test_a_terminal_shows_the_progress_and_the_summary(
    workdir: Path, run_in_terminal: Callable[..., str]
) -> None:
    shown = run_in_terminal("rebalance", "profiles", cwd=workdir)
    assert "rebalancing profiles" in shown
    assert "keys/s" in shown
    assert "profiles: scanned 400 keys" in shown, shown[-600:]
