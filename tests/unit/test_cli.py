from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from polystore.app import Polystore
from polystore.cli import main
from polystore.settings import load_settings
from polystore.testing import ServiceEndpoint, resolve_service
from polystore.testing.fixtures import skip_allowed

SECRET = "cli-s3cret"
COLOUR = re.compile(r"\x1b\[(?:\d+;)*(?:3[0-8]|9[0-7])(?:;\d+)*m")
UNREACHABLE_REDIS = f"redis://:{SECRET}@127.0.0.1:1/0"


@pytest.fixture(autouse=True)
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("POLYSTORE_CONFIG", raising=False)
    for name in list(os.environ):
        if name.startswith(("POLYSTORE_BACKENDS", "POLYSTORE_ROUTES")):
            monkeypatch.delenv(name)
    for name in ("NO_COLOR", "FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE", "COLUMNS"):
        monkeypatch.delenv(name, raising=False)  # colour is decided by the terminal alone
    return tmp_path


def run_cli(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "polystore.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=cwd,
    )


def write_config(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


# -- plugins, help, version -------------------------------------------------------------


def test_plugins_lists_builtin_backends_with_capabilities(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["--json", "plugins"]) == 0
    rows = {row["backend"]: row for row in json.loads(capsys.readouterr().out)["backends"]}
    assert rows["sqlite"]["distribution"] == "polystore-sdk"
    assert "durable" in rows["sqlite"]["capabilities"]
    assert "durable" not in rows["memory"]["capabilities"]


@pytest.mark.parametrize(
    ("command", "summary"),
    [
        ("check", "Ping every backend"),
        ("demo", "--yes"),
        ("bench", "--smoke"),
        ("plugins", "installed backend plugin"),
    ],
)
def test_every_subcommand_has_its_own_help_without_markup(
    command: str, summary: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([command, "--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"Usage: polystore {command} [OPTIONS]")
    assert summary in out
    assert "--config FILE" in out
    assert "``" not in out


def test_version_names_the_sdk_and_every_plugin_distribution(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["--version"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("polystore-sdk ")
    assert any(line.startswith("polystore-redis ") for line in lines)
    assert lines[-1].startswith("Python ")


def test_an_unknown_option_is_a_usage_error_with_status_2(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["check", "--no-such-option"]) == 2
    assert "No such option '--no-such-option'" in capsys.readouterr().err


def test_a_closed_pipe_ends_quietly_without_a_traceback(workdir: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "polystore.cli", "--json", "plugins"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=workdir,
    )
    assert proc.stdout is not None
    assert proc.stderr is not None
    proc.stdout.close()  # like `| head -1` exiting before the first write
    err = proc.stderr.read().decode()
    proc.stderr.close()
    assert proc.wait(timeout=60) == 1
    assert "Traceback" not in err
    assert "BrokenPipeError" not in err


# -- options anywhere, configuration source -----------------------------------------------


def test_options_are_accepted_after_the_subcommand(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(workdir / "x.toml", '[backends.db]\nplugin = "sqlite"\npath = "x.db"\n')
    assert main(["check", "--config", str(config), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["configuration"] == f"file {config} (--config)"
    assert list(report["backends"]) == ["db"]


def test_check_says_when_it_runs_on_the_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].startswith("configuration: defaults: no backend configured")
    assert "./.polystore/polystore.db" in out
    assert "route transactions -> default" in out
    assert out.rstrip().endswith("all checks passed")


def test_check_names_the_environment_variables_it_used(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("POLYSTORE_BACKENDS__DB__PLUGIN", "sqlite")
    monkeypatch.setenv("POLYSTORE_BACKENDS__DB__PATH", "env.db")
    assert main(["--json", "check"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["configuration"] == (
        "environment POLYSTORE_BACKENDS__DB__PATH, POLYSTORE_BACKENDS__DB__PLUGIN"
    )


def test_check_names_the_default_file_when_it_exists(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_config(workdir / "polystore.toml", '[backends.db]\nplugin = "sqlite"\npath = "x.db"\n')
    assert main(["--json", "check"]) == 0
    assert json.loads(capsys.readouterr().out)["configuration"] == "file ./polystore.toml"


# -- check: every backend, with fixes ----------------------------------------------------


def test_check_reports_every_backend_after_one_fails(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(
        workdir / "c.toml",
        f'[backends.cache]\nplugin = "redis"\nurl = "{UNREACHABLE_REDIS}"\ntimeout = 2.0\n'
        '[backends.db]\nplugin = "sqlite"\npath = "x.db"\n'
        '[routes.sessions]\nbackend = "cache"\n[routes.scratch]\nbackend = "db"\n',
    )
    assert main(["check", "--config", str(config)]) == 1
    out = capsys.readouterr().out
    assert "[FAIL] backend cache (redis)" in out
    assert "[ok  ] backend db (sqlite)" in out
    assert "fix: is the redis server running and reachable at redis://:***@127.0.0.1:1/0" in out
    assert "[FAIL] route sessions -> cache  not checked: backend cache failed" in out
    assert "[ok  ] route scratch -> db" in out
    assert SECRET not in out
    assert out.rstrip().endswith("check failed: 2 problem(s)")


@pytest.fixture(scope="module")
def relaxed_redis(request: pytest.FixtureRequest) -> Iterator[ServiceEndpoint]:
    """A Redis server that fsyncs once a second: not durable."""
    endpoint = resolve_service(
        "redis",
        allow_skip=skip_allowed(request.config),
        extra_args=["--appendfsync", "everysec"],
    )
    yield endpoint
    endpoint.close()


def test_check_explains_how_to_make_redis_durable(
    workdir: Path, relaxed_redis: ServiceEndpoint, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(
        workdir / "r.toml",
        f'[backends.cache]\nplugin = "redis"\nurl = "{relaxed_redis.url}"\n'
        '[routes.ledger]\nbackend = "cache"\nrequires = ["durable"]\n',
    )
    assert main(["--json", "check", "--config", str(config)]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["backends"]["cache"]["ok"] is True
    route = report["routes"]["ledger"]
    assert route["ok"] is False
    assert "`appendonly yes`" in route["fix"]
    assert "`appendfsync always`" in route["fix"]


def test_check_explains_a_missing_plugin_without_leaking_the_password(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(
        workdir / "other.toml", f'[backends.c]\nplugin = "nosuch"\nurl = "x://u:{SECRET}@h"\n'
    )
    assert main(["--config", str(config), "check"]) == 1
    out = capsys.readouterr().out
    assert "BackendNotFoundError" in out
    assert "fix: install the plugin that provides 'nosuch'" in out
    assert SECRET not in out


def server_version(url: str) -> str:
    async def ask() -> str:
        conn = await asyncpg.connect(url)
        try:
            return str(await conn.fetchval("SHOW server_version")).split(" ", 1)[0]
        finally:
            await conn.close()

    return asyncio.run(ask())


def test_check_shows_the_full_postgresql_version(
    workdir: Path, postgres_service: ServiceEndpoint, capsys: pytest.CaptureFixture[str]
) -> None:
    version = server_version(postgres_service.url)
    config = write_config(
        workdir / "p.toml",
        f'[backends.ledger]\nplugin = "postgres"\nurl = "{postgres_service.url}"\n',
    )
    assert main(["--json", "check", "--config", str(config)]) == 0
    detail = json.loads(capsys.readouterr().out)["backends"]["ledger"]["detail"]
    assert detail.startswith(f"PostgreSQL {version} at ")


# -- colour and progress ------------------------------------------------------------------


def test_colour_and_progress_appear_on_a_terminal(
    workdir: Path, run_in_terminal: Callable[..., str]
) -> None:
    shown = run_in_terminal("check", cwd=workdir, env={})
    assert COLOUR.search(shown)
    assert "all checks passed" in shown


def test_no_color_turns_colour_off_on_a_terminal(
    workdir: Path, run_in_terminal: Callable[..., str]
) -> None:
    shown = run_in_terminal("check", cwd=workdir, env={"NO_COLOR": "1"})
    assert not COLOUR.search(shown)
    assert "all checks passed" in shown


def test_piped_output_has_no_escape_sequences_and_no_progress(workdir: Path) -> None:
    result = run_cli("check", cwd=workdir)
    assert result.returncode == 0, result.stderr
    assert "\x1b" not in result.stdout
    assert result.stderr == ""


def test_progress_is_drawn_on_a_terminal_and_not_into_a_pipe(
    workdir: Path, run_in_terminal: Callable[..., str]
) -> None:
    shown = run_in_terminal("bench", "--smoke", "--rounds", "1", cwd=workdir, env={})
    assert "connecting to default" in shown
    assert "benchmarking" in shown
    piped = run_cli("bench", "--smoke", "--rounds", "1", cwd=workdir)
    assert piped.returncode == 0, piped.stderr
    assert piped.stderr == ""
    assert "benchmarking" not in piped.stdout


# -- demo ---------------------------------------------------------------------------------


def test_demo_runs_on_the_embedded_default(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--json", "demo"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is True
    stores = {step["route"]: step["store"] for step in report["steps"] if step["route"]}
    assert stores == {
        "sessions": "default/sessions (sqlite)",
        "profiles": "default/profiles (sqlite)",
        "transactions": "default/transactions (sqlite)",
    }
    assert any("created=False, same record=True" in step["step"] for step in report["steps"])


async def keys_of(config: Mapping[str, Any] | None, routes: Sequence[str]) -> list[str]:
    async with Polystore(load_settings(config)) as ps:
        return [key for route in routes async for key in ps.route(route).scan()]


def test_demo_leaves_nothing_behind(workdir: Path) -> None:
    assert main(["demo"]) == 0
    assert main(["demo"]) == 0
    assert asyncio.run(keys_of(None, ["sessions", "profiles", "transactions"])) == []


def test_demo_refuses_a_configured_server_backend_without_yes(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_config(
        workdir / "polystore.toml",
        f'[backends.cache]\nplugin = "redis"\nurl = "{UNREACHABLE_REDIS}"\n',
    )
    assert main(["demo"]) == 2
    err = capsys.readouterr().err
    assert "demo would write test records into backend(s) cache" in err
    assert "--yes" in err
    assert SECRET not in err


def test_demo_refuses_a_route_sharded_over_server_backends(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_config(
        workdir / "polystore.toml",
        f'[backends.a]\nplugin = "redis"\nurl = "{UNREACHABLE_REDIS}"\n'
        f'[backends.b]\nplugin = "redis"\nurl = "{UNREACHABLE_REDIS}"\n'
        '[routes.sessions]\nshards = ["a", "b"]\n',
    )
    assert main(["demo"]) == 2
    assert "demo would write test records into backend(s) a, b" in capsys.readouterr().err


def test_demo_with_yes_writes_to_redis_and_cleans_up(
    workdir: Path, redis_service: ServiceEndpoint, capsys: pytest.CaptureFixture[str]
) -> None:
    config = {
        "backends": {"cache": {"plugin": "redis", "url": redis_service.url}},
        "routes": {"sessions": {"backend": "cache"}},
    }
    write_config(
        workdir / "polystore.toml",
        f'[backends.cache]\nplugin = "redis"\nurl = "{redis_service.url}"\n'
        '[backends.local]\nplugin = "sqlite"\npath = "local.db"\n'
        '[routes.sessions]\nbackend = "cache"\n'
        '[routes.profiles]\nbackend = "local"\n[routes.transactions]\nbackend = "local"\n',
    )
    assert main(["demo", "--yes"]) == 0
    assert capsys.readouterr().out.rstrip().endswith("demo ok")
    assert asyncio.run(keys_of(config, ["sessions"])) == []


# -- console script, bench ---------------------------------------------------------------


def test_the_console_script_entry_point_runs(workdir: Path) -> None:
    result = run_cli("demo", cwd=workdir)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == "polystore demo"
    assert result.stdout.strip().endswith("demo ok")


def test_bench_smoke_measures_every_route(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "--smoke", "--rounds", "1", "--json"]) == 0
    results = json.loads(capsys.readouterr().out)
    targets = {row["target"] for row in results}
    assert {"sessions", "profiles", "transactions"} <= targets
    assert all(row["library"] == "polystore" for row in results)
    assert all(all(ops > 0 for ops in row["rounds"]) for row in results)
