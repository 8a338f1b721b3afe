from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from polystore.cli import main

SECRET = "cli-s3cret"


@pytest.fixture(autouse=True)
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("POLYSTORE_CONFIG", raising=False)
    return tmp_path


def test_plugins_lists_builtin_backends_with_capabilities(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["--json", "plugins"]) == 0
    rows = {row["backend"]: row for row in json.loads(capsys.readouterr().out)["backends"]}
    assert rows["sqlite"]["distribution"] == "polystore-sdk"
    assert "durable" in rows["sqlite"]["capabilities"]
    assert "durable" not in rows["memory"]["capabilities"]


def test_check_passes_on_the_default_configuration(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check"]) == 0
    out = capsys.readouterr().out
    assert "route transactions -> default (sqlite)" in out
    assert "all checks passed" in out


def test_check_fails_with_a_route_requirement_error(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (workdir / "polystore.toml").write_text(
        '[backends.mem]\nplugin = "memory"\n'
        '[routes.ledger]\nbackend = "mem"\nrequires = ["durable"]\n'
    )
    assert main(["--json", "check"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is False
    assert report["error"] == "RouteRequirementError"
    assert "'ledger'" in report["message"]


def test_check_fails_for_a_missing_plugin_without_leaking_the_password(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = workdir / "other.toml"
    config.write_text(f'[backends.c]\nplugin = "nosuch"\nurl = "x://u:{SECRET}@h"\n')
    assert main(["--config", str(config), "check"]) == 1
    out = capsys.readouterr().out
    assert "BackendNotFoundError" in out
    assert SECRET not in out


def test_demo_runs_on_the_embedded_default(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--json", "demo"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is True
    stores = {step["route"]: step["store"] for step in report["steps"]}
    assert stores == {
        "sessions": "default/sessions (sqlite)",
        "profiles": "default/profiles (sqlite)",
        "transactions": "default/transactions (sqlite)",
    }
    assert any("created=False, same record=True" in step["step"] for step in report["steps"])


def test_the_console_script_entry_point_runs(workdir: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "polystore.cli", "demo"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=workdir,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == "polystore demo"
    assert result.stdout.strip().endswith("demo ok")


def test_bench_smoke_measures_every_route(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--json", "bench", "--smoke", "--rounds", "1"]) == 0
    results = json.loads(capsys.readouterr().out)
    targets = {row["target"] for row in results}
    assert {"sessions", "profiles", "transactions"} <= targets
    assert all(row["library"] == "polystore" for row in results)
    assert all(all(ops > 0 for ops in row["rounds"]) for row in results)
