"""Configuration mistakes are reported, never silently dropped: key paths, file and line,
"did you mean", and warnings for what the environment holds but nothing reads."""

from __future__ import annotations

import os
from pathlib import Path

import pydantic
import pytest

from polystore import (
    BackendNotFoundError,
    ConfigurationError,
    ConfigurationWarning,
    PluginManager,
    Polystore,
    load_settings,
)
from polystore.plugins import DISABLE_ENV
from polystore.settings import PolystoreSettings, RouteConfig
from polystore.settings_errors import known_keys


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty working directory and no POLYSTORE_* variables."""
    for name in list(os.environ):
        if name.upper().startswith("POLYSTORE_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _write(folder: Path, text: str, name: str = "polystore.toml") -> Path:
    path = folder / name
    path.write_text(text)
    return path


ONE_BACKEND = """\
[backends.cache]
plugin = "memory"
"""


def test_a_misspelled_top_level_table_is_an_error_with_file_line_and_suggestion(
    workdir: Path,
) -> None:
    path = _write(workdir, ONE_BACKEND + '\n[route.sessions]\nbackend = "cache"\n')
    with pytest.raises(ConfigurationError) as info:
        load_settings(path)
    message = str(info.value)
    assert "route: unknown key; did you mean 'routes'?" in message
    assert "(polystore.toml, line 4)" in message


def test_a_misspelled_top_level_key_is_an_error_with_one_backend_too(workdir: Path) -> None:
    config = {"backends": {"cache": {"plugin": "memory"}}, "route": {"x": {"backend": "cache"}}}
    with pytest.raises(ConfigurationError, match=r"route: unknown key; did you mean 'routes'\?"):
        load_settings(config)


def test_a_misspelled_route_key_is_named_by_its_full_path(workdir: Path) -> None:
    path = _write(
        workdir, ONE_BACKEND + '\n[routes.sessions]\nbackend = "cache"\nreqires = ["ttl"]\n'
    )
    with pytest.raises(ConfigurationError) as info:
        load_settings(path)
    assert "routes.sessions.reqires: unknown key; did you mean 'requires'?" in str(info.value)
    assert "line 6" in str(info.value)


def test_a_key_far_from_any_known_one_lists_the_known_keys(workdir: Path) -> None:
    with pytest.raises(ConfigurationError) as info:
        load_settings({"routes": {"x": {"backend": "a", "zzz": 1}}})
    assert "routes.x.zzz: unknown key; known keys: " in str(info.value)
    assert "default_ttl" in str(info.value)


def test_a_bad_value_names_its_path_file_and_line_but_not_the_value(workdir: Path) -> None:
    path = _write(
        workdir, ONE_BACKEND + '\n[routes.sessions]\nbackend = "cache"\ndefault_ttl = -17\n'
    )
    with pytest.raises(ConfigurationError) as info:
        load_settings(path)
    assert "routes.sessions.default_ttl: Input should be greater than 0" in str(info.value)
    assert "(polystore.toml, line 6)" in str(info.value)
    assert "-17" not in str(info.value)


def test_known_keys_come_from_the_models_so_new_fields_are_known() -> None:
    route_keys = known_keys([PolystoreSettings], ("routes", "any-route"))
    assert route_keys == sorted(f.alias or n for n, f in RouteConfig.model_fields.items())

    class Extended(RouteConfig):
        colour: str = "blue"

    class Top(pydantic.BaseModel):
        routes: dict[str, Extended | None] = pydantic.Field(default_factory=dict)

    assert "colour" in known_keys([Top], ("routes", "any-route"))
    assert known_keys([PolystoreSettings], ()) == ["backends", "routes", "telemetry"]


def test_toml_syntax_errors_name_the_file_line_and_column(workdir: Path) -> None:
    path = _write(workdir, ONE_BACKEND + "[routes\n", name="broken.toml")
    with pytest.raises(ConfigurationError) as info:
        load_settings(path)
    assert f"{path}, line 3, column 8: invalid TOML" in str(info.value)
    assert isinstance(info.value.__cause__, type(None))


def test_toml_syntax_errors_in_the_default_file_are_configuration_errors(workdir: Path) -> None:
    _write(workdir, 'x = "unterminated\n')
    with pytest.raises(ConfigurationError, match=r"polystore.toml, line 1, column \d+"):
        load_settings()


def test_polystore_config_naming_a_missing_file_is_an_error(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("POLYSTORE_CONFIG", str(workdir / "missing.toml"))
    with pytest.raises(ConfigurationError, match=r"named by POLYSTORE_CONFIG\) does not exist"):
        load_settings()


def test_a_missing_default_file_just_means_defaults(workdir: Path) -> None:
    assert load_settings().backends == {}


def test_polystore_config_names_the_file_to_read(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _write(workdir, ONE_BACKEND, name="elsewhere.toml")
    monkeypatch.setenv("POLYSTORE_CONFIG", str(path))
    assert load_settings().backends["cache"].plugin == "memory"


class _RecordingEnviron(dict[str, str]):
    """A stand-in for ``os.environ`` that records every write."""

    writes: list[str]

    def __setitem__(self, key: str, value: str) -> None:
        self.writes.append(key)
        super().__setitem__(key, value)

    def __delitem__(self, key: str) -> None:
        self.writes.append(key)
        super().__delitem__(key)


def test_loading_a_file_by_path_never_writes_the_environment(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    environ = _RecordingEnviron(os.environ)
    environ.writes = []
    monkeypatch.setattr(os, "environ", environ)
    path = _write(workdir, ONE_BACKEND, name="app.toml")
    assert load_settings(path).backends["cache"].plugin == "memory"
    assert environ.writes == []
    assert "POLYSTORE_CONFIG" not in environ


def test_a_mapping_is_the_whole_configuration(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _write(workdir, '[backends.other]\nplugin = "sqlite"\n')
    monkeypatch.setenv("POLYSTORE_BACKENDS__ENV__PLUGIN", "memory")
    settings = load_settings({"backends": {"cache": {"plugin": "memory"}}})
    assert sorted(settings.backends) == ["cache"]


def test_a_misspelled_environment_variable_is_a_warning_with_a_suggestion(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("POLYSTORE_ROUTE__SESSIONS__BACKEND", "cache")
    with pytest.warns(ConfigurationWarning) as caught:
        load_settings()
    assert [str(w.message) for w in caught] == [
        "environment variable POLYSTORE_ROUTE__SESSIONS__BACKEND is not a polystore setting "
        "and is ignored; did you mean POLYSTORE_ROUTES__SESSIONS__BACKEND?"
    ]
    assert caught[0].filename == __file__  # the application's line, not polystore's


def test_an_unknown_environment_variable_lists_what_polystore_reads(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("POLYSTORE_SOMETHING", "1")
    with pytest.warns(ConfigurationWarning, match="known: POLYSTORE_BACKENDS__..., POLYSTORE_"):
        load_settings()


def test_variables_of_the_test_kit_and_benchmarks_are_not_warned_about(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("POLYSTORE_TEST_REDIS_URL", "redis://127.0.0.1:1/0")
    monkeypatch.setenv("POLYSTORE_BENCH_ROUNDS", "3")
    monkeypatch.setenv("POLYSTORE_DISABLE_PLUGINS", "")
    assert load_settings().backends == {}  # filterwarnings=error fails on any warning


def test_an_error_from_an_environment_variable_names_the_variable(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("POLYSTORE_ROUTES__SESSIONS__BAKEND", "cache")
    with pytest.raises(ConfigurationError) as info:
        load_settings()
    assert "routes.sessions.bakend: unknown key; did you mean 'backend'?" in str(info.value)
    assert "(environment variable POLYSTORE_ROUTES__SESSIONS__BAKEND)" in str(info.value)


def test_a_route_naming_a_misspelled_backend_suggests_the_configured_one() -> None:
    settings = load_settings(
        {"backends": {"cache": {"plugin": "memory"}}, "routes": {"x": {"backend": "cahce"}}}
    )
    with pytest.raises(ConfigurationError) as info:
        settings.resolved()
    assert str(info.value).startswith(
        "routes.x.backend: backend 'cahce' is not configured; did you mean 'cache'?"
    )


def test_a_misspelled_disabled_plugin_is_a_warning_naming_the_known_plugins(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(DISABLE_ENV, "memroy")
    manager = PluginManager(entry_points=False)
    with pytest.warns(ConfigurationWarning) as caught:
        names = [info.name for info in manager.plugins()]
    assert "memory" in names
    (warning,) = caught
    assert warning.filename == __file__
    assert "POLYSTORE_DISABLE_PLUGINS names plugin 'memroy'" in str(warning.message)
    assert "did you mean 'memory'?" in str(warning.message)
    assert "known plugins: " in str(warning.message)
    assert "sqlite" in str(warning.message)


def test_a_correctly_disabled_plugin_is_blocked_without_a_warning(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(DISABLE_ENV, "memory")
    names = [info.name for info in PluginManager(entry_points=False).plugins()]
    assert "memory" not in names
    assert "sqlite" in names


@pytest.mark.asyncio
async def test_a_misspelled_plugin_name_suggests_an_installed_one() -> None:
    manager = PluginManager(entry_points=False)
    config = {"backends": {"cache": {"plugin": "memroy"}}}
    with pytest.raises(
        BackendNotFoundError, match=r"'memroy' is installed; did you mean 'memory'\?"
    ):
        await Polystore.from_config(config, plugins=manager).start()


@pytest.mark.asyncio
async def test_a_misspelled_plugin_option_in_the_file_names_its_line(workdir: Path) -> None:
    path = _write(workdir, ONE_BACKEND + "max_value_byte = 5\n", name="app.toml")
    with pytest.raises(ConfigurationError) as info:
        await Polystore.from_settings(path, plugins=PluginManager(entry_points=False)).start()
    assert "backends.cache.max_value_byte: unknown key; did you mean 'max_value_bytes'?" in str(
        info.value
    )
    assert "(app.toml, line 3)" in str(info.value)


def test_settings_read_from_a_file_remember_it_once_resolved(workdir: Path) -> None:
    path = _write(workdir, ONE_BACKEND, name="app.toml")
    settings = load_settings(path)
    assert settings.config_file is not None
    assert settings.resolved().config_file is settings.config_file
    assert load_settings({"backends": {}}).config_file is None
