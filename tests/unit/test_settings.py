from __future__ import annotations

from pathlib import Path

import pytest

from polystore import ConfigurationError, Polystore, PolystoreSettings, load_settings

SECRET = "s3cr3t-p4ss"


def test_settings_come_from_a_toml_file(tmp_path: Path) -> None:
    path = tmp_path / "polystore.toml"
    path.write_text(
        """
[backends.cache]
plugin = "memory"

[routes.sessions]
backend = "cache"
requires = ["ttl"]
default_ttl = 60
"""
    )
    settings = load_settings(path)
    assert settings.backends["cache"].plugin == "memory"
    assert settings.routes["sessions"].default_ttl == 60


def test_settings_come_from_environment_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POLYSTORE_BACKENDS__CACHE__PLUGIN", "memory")
    monkeypatch.setenv("POLYSTORE_ROUTES__SESSIONS__BACKEND", "cache")
    monkeypatch.setenv("POLYSTORE_TEST_REDIS_URL", "redis://unrelated")
    monkeypatch.chdir(Path("/"))
    settings = load_settings()
    assert settings.backends["cache"].plugin == "memory"
    assert settings.routes["sessions"].backend == "cache"


def test_no_configuration_means_one_sqlite_backend_for_every_standard_route(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    resolved = load_settings().resolved()
    assert resolved.backends["default"].plugin == "sqlite"
    assert {name: r.backend for name, r in resolved.routes.items()} == {
        "sessions": "default",
        "profiles": "default",
        "transactions": "default",
    }
    assert resolved.routes["sessions"].requires == ("ttl",)
    assert resolved.routes["transactions"].requires == ("transactions", "cas", "durable")


def test_a_route_naming_an_unknown_backend_is_a_configuration_error() -> None:
    settings = load_settings(
        {"backends": {"a": {"plugin": "memory"}}, "routes": {"x": {"backend": "b"}}}
    )
    with pytest.raises(ConfigurationError, match="'b'"):
        settings.resolved()


def test_an_unknown_capability_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="unknown capability 'fast'"):
        load_settings({"routes": {"x": {"backend": "a", "requires": ["fast"]}}})


def test_a_missing_toml_file_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="does not exist"):
        load_settings(tmp_path / "nope.toml")


def test_secrets_are_redacted_in_settings_reprs() -> None:
    settings = load_settings(
        {
            "backends": {
                "cache": {
                    "plugin": "redis",
                    "url": f"redis://user:{SECRET}@host:6379/0",
                    "password": SECRET,
                }
            }
        }
    )
    assert SECRET not in repr(settings)
    assert SECRET not in str(settings)
    assert SECRET not in repr(settings.backends["cache"])
    assert "redis://user:***@host:6379/0" in repr(settings)


@pytest.mark.asyncio
async def test_invalid_backend_options_never_echo_the_secret() -> None:
    config = {"backends": {"m": {"plugin": "memory", "password": SECRET}}}
    with pytest.raises(ConfigurationError) as info:
        await Polystore.from_config(config).start()
    assert "backends.m.password" in str(info.value)
    assert SECRET not in str(info.value)


def test_settings_objects_pass_through_unchanged() -> None:
    settings = PolystoreSettings()
    assert load_settings(settings) is settings
