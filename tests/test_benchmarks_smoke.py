"""The benchmark suite's smoke mode still runs, end to end, through its documented command.

Speed is never asserted: only that every workload produced a positive figure and a ratio
for every library that can run it, and that a batch of 100 reaches the server as one or
a few commands, not 100.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from polystore import PluginManager
from polystore.testing.services import ServiceEndpoint, resolve_service

ROOT = Path(__file__).resolve().parents[1]
WORKLOADS = {"save", "get", "get_concurrent", "save_concurrent", "save_batch", "get_batch", "cas"}
PEERS = {"py-key-value": "key_value.aio", "aiocache": "aiocache"}
INSTALLED = {"polystore", "raw"} | {
    name for name, module in PEERS.items() if importlib.util.find_spec(module) is not None
}
LIBRARIES = {
    "sqlite": {"polystore", "raw"},
    "redis": {"polystore", "raw", "py-key-value", "aiocache"} & INSTALLED,
    "postgres": {"polystore", "raw", "py-key-value"} & INSTALLED,
    "mongodb": {"polystore", "raw", "py-key-value"} & INSTALLED,
}
NO_CAS = {"py-key-value"}
MOST_BATCH_COMMANDS = 3


def run_benchmarks(tmp_path: Path, *args: str) -> dict[str, Any]:
    out = tmp_path / "bench.json"
    completed = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--smoke", "--json", str(out), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    report: dict[str, Any] = json.loads(out.read_text())
    report["stdout"] = completed.stdout
    return report


def section(report: dict[str, Any], name: str) -> dict[str, Any]:
    found: dict[str, Any] = next(s for s in report["sections"] if s["backend"] == name)
    assert not found["status"], found["status"]
    return found


def assert_figures_and_ratios(found: dict[str, Any], libraries: set[str]) -> None:
    results = found["results"]
    assert {r["workload"] for r in results} == WORKLOADS
    for workload in WORKLOADS:
        expected = libraries - NO_CAS if workload == "cas" else libraries
        measured = {
            r["library"]: r["rounds"] for r in results if r["workload"] == workload and r["rounds"]
        }
        assert set(measured) == expected, workload
        assert all(rate > 0 for rounds in measured.values() for rate in rounds), workload
        compared = {r["versus"] for r in found["ratios"] if r["workload"] == workload}
        assert compared == expected - {"polystore"}, workload
        assert all(r["median"] > 0 for r in found["ratios"])


def assert_batches_are_few_commands(found: dict[str, Any], libraries: set[str]) -> None:
    for workload in ("save_batch", "get_batch"):
        counts = found["counters"][workload]
        assert set(counts) == libraries, workload
        mine = counts["polystore"]
        assert mine, f"polystore's {workload} caused no counted command"
        assert sum(mine.values()) <= MOST_BATCH_COMMANDS, (workload, mine)


def require_plugin(name: str) -> None:
    if name not in PluginManager().backends:
        pytest.skip(f"the {name} backend plugin is not installed")


def server(request: pytest.FixtureRequest, name: str) -> ServiceEndpoint:
    """The session's private ``name`` server, once its plugin is known to be installed."""
    require_plugin(name)
    endpoint: ServiceEndpoint = request.getfixturevalue(f"{name}_service")
    return endpoint


@pytest.fixture(scope="module")
def counted_postgres(request: pytest.FixtureRequest) -> Iterator[ServiceEndpoint]:
    """A private PostgreSQL with pg_stat_statements loaded, for the command counters."""
    require_plugin("postgres")
    from polystore.testing.fixtures import skip_allowed

    endpoint = resolve_service(
        "postgres",
        allow_skip=skip_allowed(request.config),
        extra_args=["-c", "shared_preload_libraries=pg_stat_statements"],
    )
    try:
        yield endpoint
    finally:
        endpoint.close()


def test_sqlite_smoke_measures_every_workload_for_polystore_and_raw(tmp_path: Path) -> None:
    report = run_benchmarks(tmp_path, "--backend", "sqlite")

    assert_figures_and_ratios(section(report, "sqlite"), LIBRARIES["sqlite"])
    assert "### sqlite" in report["stdout"]
    assert report["machine"]["cores"]
    assert report["versions"]["polystore-sdk"] != "not installed"


def test_redis_smoke_compares_every_library_and_batches_are_one_command(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url = server(request, "redis").url

    report = run_benchmarks(tmp_path, "--backend", "redis", "--redis-url", url)

    found = section(report, "redis")
    assert_figures_and_ratios(found, LIBRARIES["redis"])
    assert_batches_are_few_commands(found, LIBRARIES["redis"])
    assert found["counters"]["get_batch"]["polystore"] == {"mget": 1}


def test_postgres_smoke_compares_every_library_and_batches_are_one_statement(
    tmp_path: Path, counted_postgres: ServiceEndpoint
) -> None:
    report = run_benchmarks(
        tmp_path, "--backend", "postgres", "--postgres-url", counted_postgres.url
    )

    found = section(report, "postgres")
    assert_figures_and_ratios(found, LIBRARIES["postgres"])
    assert_batches_are_few_commands(found, LIBRARIES["postgres"])


def test_mongodb_smoke_compares_every_library_and_batches_are_one_command(
    tmp_path: Path, mongodb_service: ServiceEndpoint
) -> None:
    require_plugin("mongodb")

    report = run_benchmarks(tmp_path, "--backend", "mongodb", "--mongodb-url", mongodb_service.url)

    found = section(report, "mongodb")
    assert_figures_and_ratios(found, LIBRARIES["mongodb"])
    assert_batches_are_few_commands(found, LIBRARIES["mongodb"])


def test_mixed_smoke_routes_sessions_profiles_and_transactions(tmp_path: Path) -> None:
    report = run_benchmarks(tmp_path, "--backend", "sqlite", "--backend", "mixed")

    mixed = section(report, "mixed")
    assert mixed["where"] == "sessions: sqlite, profiles: sqlite, transactions: sqlite"
    rates = {r["library"]: r["rounds"] for r in mixed["results"] if r["rounds"]}
    assert set(rates) == {"polystore", "raw"}
    assert all(rate > 0 for rounds in rates.values() for rate in rounds)
    assert [r["versus"] for r in mixed["ratios"]] == ["raw"]


def test_mixed_smoke_on_servers_compares_polystore_raw_and_py_key_value(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    urls = [
        f"--{name}-url={server(request, name).url}" for name in ("redis", "postgres", "mongodb")
    ]

    report = run_benchmarks(tmp_path, "--backend", "mixed", *urls)

    mixed = section(report, "mixed")
    assert mixed["where"] == "sessions: redis, profiles: mongodb, transactions: postgres"
    rates = {r["library"]: r["rounds"] for r in mixed["results"] if r["rounds"]}
    assert set(rates) == {"polystore", "raw", "py-key-value"} & INSTALLED
    assert all(rate > 0 for rounds in rates.values() for rate in rounds)
    assert {r["versus"] for r in mixed["ratios"]} == set(rates) - {"polystore"}


def test_sharded_smoke_measures_every_target_on_every_workload(tmp_path: Path) -> None:
    report = run_benchmarks(tmp_path, "--backend", "sharded")
    found = section(report, "sharded")
    assert set(found["rates"]) == WORKLOADS | {"save_concurrent"}
    for workload, rates in found["rates"].items():
        assert set(rates) == {"bare", "1 shard", "2 shards", "4 shards", "1 shard, stored map"}
        assert all(rate > 0 for rounds in rates.values() for rate in rounds), workload
    assert "1 shard / bare" in report["stdout"]
    assert set(found["cpu_us_per_op"]) == set(found["rates"])


def test_replicated_smoke_measures_both_targets_on_every_workload_but_cas(
    tmp_path: Path,
) -> None:
    report = run_benchmarks(tmp_path, "--backend", "replicated")
    found = section(report, "replicated")
    assert set(found["rates"]) == (WORKLOADS - {"cas"}) | {"save_concurrent"}
    for workload, rates in found["rates"].items():
        assert set(rates) == {"bare", "3 replicas W=2 R=2"}, workload
        assert all(rate > 0 for rounds in rates.values() for rate in rounds), workload
    assert "replicated / bare" in report["stdout"]
