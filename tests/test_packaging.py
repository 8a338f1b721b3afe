"""The documented install paths work on a fresh virtual environment.

``make dist`` builds the four wheels; they install into a new venv (dependencies from the
index, the backends from ``dist/`` through ``--find-links``) where ``polystore demo`` runs;
a checkout installs with plain pip, and the core from a git URL; the published metadata
carries the license, the project URLs and only the user-facing extras.
"""

from __future__ import annotations

import email
import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DISTRIBUTIONS = ("polystore_sdk", "polystore_redis", "polystore_mongodb", "polystore_postgres")
PUBLIC_EXTRAS = {"redis", "mongodb", "postgres", "testing", "docker", "otel"}
INSTALL_TIMEOUT = 900


def run(*args: str | Path, cwd: Path | None = None) -> str:
    result = subprocess.run(
        [str(a) for a in args],
        capture_output=True,
        text=True,
        timeout=INSTALL_TIMEOUT,
        check=False,
        cwd=cwd,
    )
    assert result.returncode == 0, f"{args}: {result.stdout}\n{result.stderr}"
    return result.stdout


def fresh_venv(path: Path) -> Path:
    """A new virtual environment without the repository's packages; its bin directory."""
    run(sys.executable, "-m", "venv", path)
    return path / "bin"


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    out = tmp_path_factory.mktemp("dist")
    run("make", "-C", ROOT, "dist", f"VENV={sys.prefix}", f"DIST={out}")
    return out


def metadata(wheel: Path) -> email.message.Message:
    with zipfile.ZipFile(wheel) as archive:
        name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        return email.message_from_bytes(archive.read(name))


def test_make_dist_builds_the_four_wheels(dist: Path) -> None:
    names = sorted(p.name.split("-")[0] for p in dist.glob("*.whl"))
    assert names == sorted(DISTRIBUTIONS)


def test_every_wheel_carries_the_apache_license(dist: Path) -> None:
    for wheel in dist.glob("*.whl"):
        meta = metadata(wheel)
        assert meta["License-Expression"] == "Apache-2.0"
        assert meta["License-File"] == "LICENSE"
        with zipfile.ZipFile(wheel) as archive:
            text = archive.read(
                next(n for n in archive.namelist() if n.endswith("licenses/LICENSE"))
            ).decode()
        assert "Apache License\n                           Version 2.0" in text


def test_the_core_metadata_has_project_urls_and_only_user_facing_extras(dist: Path) -> None:
    meta = metadata(next(dist.glob("polystore_sdk-*.whl")))
    assert set(meta.get_all("Provides-Extra") or []) == PUBLIC_EXTRAS
    urls = dict(url.split(", ", 1) for url in meta.get_all("Project-URL") or [])
    assert {"Homepage", "Documentation", "Source", "Issues"} <= set(urls)
    requirements = " ".join(meta.get_all("Requires-Dist") or [])
    assert "ruff" not in requirements
    assert "py-key-value" not in requirements


def test_the_built_wheels_install_into_a_fresh_venv_and_run_the_demo(
    dist: Path, tmp_path: Path
) -> None:
    bin_dir = fresh_venv(tmp_path / "venv")
    run(
        bin_dir / "python", "-m", "pip", "install", "--quiet", "--find-links", dist,
        "polystore-sdk[redis,mongodb,postgres]",
    )  # fmt: skip
    plugins = json.loads(run(bin_dir / "polystore", "--json", "plugins"))
    backends = {row["backend"]: row["distribution"] for row in plugins["backends"]}
    assert backends["redis"] == "polystore-redis"
    assert backends["mongodb"] == "polystore-mongodb"
    assert backends["postgres"] == "polystore-postgres"
    work = tmp_path / "app"
    work.mkdir()
    out = run(bin_dir / "polystore", "demo", cwd=work)
    assert out.splitlines()[0] == "polystore demo"
    assert out.rstrip().endswith("demo ok")


def test_a_checkout_installs_with_plain_pip(tmp_path: Path) -> None:
    bin_dir = fresh_venv(tmp_path / "venv")
    run(
        bin_dir / "python", "-m", "pip", "install", "--quiet",
        ROOT, ROOT / "plugins" / "polystore-redis",
    )  # fmt: skip
    plugins = json.loads(run(bin_dir / "polystore", "--json", "plugins"))
    assert {row["backend"] for row in plugins["backends"]} >= {"sqlite", "memory", "redis"}


def test_the_core_installs_from_a_git_url(tmp_path: Path) -> None:
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    bin_dir = fresh_venv(tmp_path / "venv")
    run(
        bin_dir / "python",
        "-m",
        "pip",
        "install",
        "--quiet",
        f"polystore-sdk @ git+file://localhost{ROOT}",
    )
    assert run(bin_dir / "polystore", "--version").startswith("polystore-sdk 0.1.0")
