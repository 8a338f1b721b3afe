"""The plugin interface: ``polystore.spi`` is pinned, and the plugins use nothing else."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import polystore
import polystore.spi

ROOT = Path(__file__).resolve().parents[2]
EMBEDDED = ROOT / "polystore" / "backends"
PLUGIN_SOURCES = sorted(ROOT.glob("plugins/*/src/*/**/*.py")) + sorted(EMBEDDED.glob("*.py"))
ALLOWED = {"polystore", "polystore.spi"}

EXPECTED_SPI = [
    "Backend",
    "BackendRegistry",
    "BackendSettings",
    "BackendSpec",
    "BaseBackend",
    "BaseStore",
    "BaseTransaction",
    "Capabilities",
    "CoalesceStats",
    "Codec",
    "DEFAULT_MAX_VALUE_BYTES",
    "DataStore",
    "DataStoreTransaction",
    "DeadlineWatch",
    "Entry",
    "ErrorMap",
    "Health",
    "JSONInput",
    "JSONValue",
    "JsonCodec",
    "MAX_KEY_BYTES",
    "MAX_TTL_SECONDS",
    "MergeFunction",
    "MergeRegistry",
    "PROJECT_NAME",
    "REDACTED",
    "ReadResult",
    "RetryPolicy",
    "RetrySettings",
    "Scalar",
    "StoreWrapper",
    "TTL",
    "Version",
    "WriteOp",
    "WriteResult",
    "budget",
    "current_deadline",
    "hookimpl",
    "matches_where",
    "new_version",
    "new_versions",
    "redact_options",
    "redact_text",
    "redact_url",
    "remaining",
    "scalar_equal",
    "step_deadline",
    "url_secrets",
    "userinfo_problem",
    "validate_batch_size",
    "validate_key",
    "validate_keys",
    "validate_limit",
    "validate_namespace",
    "validate_prefix",
    "validate_ttl",
    "validate_where",
]


def test_the_spi_surface_is_exactly_the_pinned_one() -> None:
    assert sorted(polystore.spi.__all__) == EXPECTED_SPI


def test_every_spi_name_resolves() -> None:
    missing = [name for name in polystore.spi.__all__ if not hasattr(polystore.spi, name)]
    assert missing == []


def test_names_in_both_surfaces_are_the_same_objects() -> None:
    shared = set(polystore.spi.__all__) & set(polystore.__all__)
    assert shared  # the base classes are in both
    for name in shared:
        assert getattr(polystore.spi, name) is getattr(polystore, name), name


def _polystore_imports(path: Path) -> list[str]:
    modules: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            modules.append(node.module)
        elif isinstance(node, ast.Import):
            modules.extend(alias.name for alias in node.names)
    return [m for m in modules if m == "polystore" or m.startswith("polystore.")]


def test_the_plugin_sources_are_found() -> None:
    packages = {path.parts[-2] for path in PLUGIN_SOURCES}
    assert {"polystore_redis", "polystore_mongodb", "polystore_postgres", "backends"} <= packages


@pytest.mark.parametrize("path", PLUGIN_SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_plugins_import_only_the_application_api_and_the_spi(path: Path) -> None:
    own = "polystore.backends" if path.parent == EMBEDDED else None  # the embedded package
    outside = [
        m
        for m in _polystore_imports(path)
        if m not in ALLOWED and not (own and (m == own or m.startswith(own + ".")))
    ]
    assert outside == [], "plugins import from polystore and polystore.spi only (add to spi)"


def _logger_names(path: Path) -> list[str]:
    names: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "getLogger"
        ):
            argument = node.args[0] if node.args else None
            if isinstance(argument, ast.Constant) and isinstance(argument.value, str):
                names.append(argument.value)
            else:
                names.append("(computed)")
    return names


CORE_SOURCES = sorted((ROOT / "polystore").rglob("*.py"))


@pytest.mark.parametrize(
    "path", PLUGIN_SOURCES + CORE_SOURCES, ids=lambda p: str(p.relative_to(ROOT))
)
def test_loggers_are_named_under_the_polystore_tree(path: Path) -> None:
    outside = [
        name
        for name in _logger_names(path)
        if name != "polystore" and not name.startswith("polystore.")
    ]
    assert outside == [], "name loggers polystore.<area>, e.g. polystore.redis"


PLUGIN_TESTS = sorted(ROOT.glob("plugins/*/tests/**/*.py"))


def _public_testing(module: str) -> bool:
    parts = module.split(".")
    return parts[:2] == ["polystore", "testing"] and not any(p.startswith("_") for p in parts)


@pytest.mark.parametrize("path", PLUGIN_TESTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_plugin_tests_import_the_application_api_the_spi_and_the_test_kit(path: Path) -> None:
    outside = [m for m in _polystore_imports(path) if m not in ALLOWED and not _public_testing(m)]
    assert outside == [], "tests of plugins import polystore, polystore.spi, polystore.testing"
