"""``polystore maintain`` on a backend whose namespace tables are partitioned by month."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import asyncpg  # type: ignore[import-untyped,unused-ignore]
import pytest

from polystore import Polystore
from polystore.testing.services import ServiceEndpoint


def _polystore(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("POLYSTORE_")}
    return subprocess.run(
        [sys.executable, "-m", "polystore.cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _months_from_now(count: int) -> list[str]:
    today = dt.datetime.now(dt.timezone.utc).date()
    index = today.year * 12 + today.month - 1
    return [f"{(index + i) // 12}{(index + i) % 12 + 1:02d}" for i in range(count)]


async def _drop_a_month_and_open(config: Path, url: str, schema: str) -> str:
    async with Polystore.from_settings(config) as ps:
        await ps.route("ledger").save(f"{dt.datetime.now(dt.timezone.utc):%Y-%m-%d}/tx-1", 1)
    conn = await asyncpg.connect(url)
    try:
        table: str = await conn.fetchval(f'SELECT table_name FROM "{schema}".polystore_namespaces')
        last = _months_from_now(3)[-1]
        await conn.execute(f'DROP TABLE "{schema}"."{table}_{last}"')
    finally:
        await conn.close()
    return table


@pytest.mark.parametrize("as_json", [False, True])
def test_maintain_creates_a_missing_month_ahead_then_has_nothing_to_do(
    tmp_path: Path, postgres_service: ServiceEndpoint, as_json: bool
) -> None:
    schema = f"cli_{uuid.uuid4().hex[:8]}"
    config = tmp_path / "polystore.toml"
    config.write_text(
        f"""
[backends.ledger]
plugin = "postgres"
url = "{postgres_service.url}"
schema = "{schema}"
reap_interval = 60
partitioning = {{ by = "range", ahead = 2 }}

[routes.ledger]
backend = "ledger"
"""
    )
    table = asyncio.run(_drop_a_month_and_open(config, postgres_service.url, schema))
    missing = f"{schema}.{table}_{_months_from_now(3)[-1]}"

    first = _polystore("maintain", *(["--json"] if as_json else []), cwd=tmp_path)
    second = _polystore("maintain", cwd=tmp_path)

    assert first.returncode == 0, first.stderr
    if as_json:
        assert json.loads(first.stdout) == {
            "backends": {"ledger": {"created": [missing], "detached": []}}
        }
    else:
        assert first.stdout.splitlines() == [f"ledger: created {missing}"]
    assert second.stdout.splitlines() == ["ledger: nothing to do"]
