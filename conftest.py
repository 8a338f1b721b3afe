"""Test-suite-wide configuration.

polystore's own fixtures for real servers come from ``polystore.testing``, and every fenced
code block of the READMEs (the repository's and each plugin's) and docs/ runs as a test
(see docs/testing.md):

- ``python`` blocks run in order; the blocks of one page share one namespace. Each page
  runs in a fresh temporary directory, with ``REDIS_URL``, ``POSTGRES_URL`` and
  ``MONGODB_URL`` set to the test kit's private servers on the pages that need them.
- ``toml`` blocks are parsed; those holding ``backends`` or ``routes`` are validated as
  polystore settings.
- ``bash``/``console`` blocks are run with ``bash -e`` when every command in them is a
  ``polystore`` command; any other shell block must be marked as not run.
- A block that cannot run is marked in the Markdown source, on the line before it, with
  ``<!-- skip: next "why it cannot run" -->``.
- ``text`` blocks are output, not code, and are not run.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from sybil import Example, Sybil
from sybil.parsers.markdown import CodeBlockParser, PythonCodeBlockParser, SkipParser

from polystore.settings import load_settings

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
SERVER_PAGES = [
    "README.md",
    "docs/backends/*.md",
    "docs/configuration.md",
    "docs/models.md",
    "docs/integrations/*.md",
    "docs/sharding.md",
    "docs/replication.md",
    "docs/testing.md",
]
SERVER_FIXTURES = ["redis_service", "postgres_service", "mongodb_service"]
SHELL_LANGUAGES = ("bash", "console", "sh", "shell")
FENCE_LANGUAGES = ("python", "toml", "sql", "text", "markdown", *SHELL_LANGUAGES)
"""Every language a fence in README.md and docs/ may name (tests/test_docs_fences.py)."""


def _check_toml(example: Example) -> None:
    data = tomllib.loads(example.parsed)
    if "backends" in data or "routes" in data:
        load_settings(data)


def _run_shell(example: Example) -> None:
    lines = str(example.parsed).splitlines()
    if example.region.lexemes.get("arguments", "").startswith("console"):
        lines = [line[2:] for line in lines if line.startswith("$ ")]  # the rest is output
    commands = [s for s in (line.strip() for line in lines) if s and not s.startswith("#")]
    others = [c for c in commands if not c.startswith("polystore ")]
    if others:
        raise AssertionError(
            f"shell block runs {others[0]!r}: only `polystore` commands run here; mark the "
            'block with <!-- skip: next "reason" --> if it cannot run in the test suite'
        )
    script = "\n".join(commands)
    bindir = Path(sys.executable).parent
    env = {**os.environ, "PATH": f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}"}
    # The page's own `polystore` commands, through the bash on PATH.
    result = subprocess.run(  # noqa: S603
        ["bash", "-e", "-c", script],  # noqa: S607
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env=env,
    )
    assert result.returncode == 0, result.stdout + result.stderr


class _Page:
    """Per page: a temporary working directory and the server URLs."""

    def __init__(self) -> None:
        self.previous_cwd = os.getcwd()
        self.tmp = tempfile.mkdtemp(prefix="polystore-docs-")
        self.saved_env: dict[str, str | None] = {}

    def setup(self, _namespace: dict[str, Any]) -> None:
        os.chdir(self.tmp)

    def export_urls(self, namespace: dict[str, Any]) -> None:
        """Point REDIS_URL, POSTGRES_URL and MONGODB_URL at the page's servers."""
        for fixture, env in (
            ("redis_service", "REDIS_URL"),
            ("postgres_service", "POSTGRES_URL"),
            ("mongodb_service", "MONGODB_URL"),
        ):
            service = namespace.get(fixture)
            if service is not None:
                self.saved_env.setdefault(env, os.environ.get(env))
                os.environ[env] = service.url

    def teardown(self, _namespace: dict[str, Any]) -> None:
        os.chdir(self.previous_cwd)
        shutil.rmtree(self.tmp, ignore_errors=True)
        for env, value in self.saved_env.items():
            if value is None:
                os.environ.pop(env, None)
            else:
                os.environ[env] = value


def _setup(namespace: dict[str, Any]) -> None:
    page = _Page()
    namespace["__page__"] = page
    page.setup(namespace)


def _teardown(namespace: dict[str, Any]) -> None:
    namespace["__page__"].teardown(namespace)


def _python_with_servers(document: Any) -> Any:
    """Python blocks, each run after the page's server URLs are exported."""
    for region in PythonCodeBlockParser()(document):
        run = region.evaluator

        def evaluate(example: Example, run: Any = run) -> Any:
            example.namespace["__page__"].export_urls(example.namespace)
            return run(example)

        region.evaluator = evaluate
        yield region


def _not_run(example: Example) -> None:
    language = example.region.lexemes.get("arguments", "")
    raise AssertionError(
        f"a {language!r} block cannot run here: mark it with "
        '<!-- skip: next "reason" --> on the line before it'
    )


def _parsers() -> list[Any]:
    return [
        SkipParser(),
        _python_with_servers,
        CodeBlockParser("sql", _not_run),
        CodeBlockParser("toml", _check_toml),
        *(CodeBlockParser(language, _run_shell) for language in SHELL_LANGUAGES),
    ]


def _sybils() -> Any:
    """The collectors for pages with and without servers."""
    with_servers = Sybil(
        parsers=_parsers(),
        patterns=SERVER_PAGES,
        path=str(ROOT),
        setup=_setup,
        teardown=_teardown,
        fixtures=SERVER_FIXTURES,
        name="docs-with-servers",
    )
    embedded = Sybil(
        parsers=_parsers(),
        patterns=["docs/**/*.md", "docs/*.md"],
        excludes=[p for p in SERVER_PAGES if p.startswith("docs/")],
        path=str(ROOT),
        setup=_setup,
        teardown=_teardown,
        name="docs-embedded",
    )
    return with_servers + embedded


pytest_plugins = ["polystore.testing"]
pytest_collect_file = _sybils().pytest()


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Say how many documentation code blocks ran."""
    ran: dict[str, int] = {"passed": 0, "failed": 0, "skipped": 0}
    pages = set()
    for outcome in ran:
        for report in terminalreporter.stats.get(outcome, []):
            nodeid = getattr(report, "nodeid", "")
            when = getattr(report, "when", "")
            if ".md::" in nodeid and (when == "call" or outcome == "skipped"):
                ran[outcome] += 1
                pages.add(nodeid.split("::", 1)[0])
    if sum(ran.values()):
        terminalreporter.write_line(
            f"documentation code blocks: {ran['passed']} executed and passed, "
            f"{ran['failed']} failed, {ran['skipped']} marked not to run, "
            f"in {len(pages)} pages"
        )
