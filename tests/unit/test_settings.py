from __future__ import annotations

import logging
from pathlib import Path

import pydantic
import pytest

from polystore import (
    BackendRegistry,
    BackendSpec,
    Capabilities,
    ConfigurationError,
    PluginManager,
    Polystore,
    PolystoreSettings,
    RouteRequirementError,
    hookimpl,
    load_settings,
    redact_url,
)
from polystore.backends.memory import MemoryBackend, MemorySettings

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


def test_circuit_breaker_settings_are_polystores_not_the_plugins(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("POLYSTORE_BACKENDS__CACHE__PLUGIN", "memory")
    monkeypatch.setenv("POLYSTORE_BACKENDS__CACHE__CIRCUIT_BREAKER__FAILURES", "7")
    monkeypatch.chdir(Path("/"))
    config = load_settings().backends["cache"]
    assert config.circuit_breaker.failures == 7
    assert config.circuit_breaker.reset_after == 2.0
    assert "circuit_breaker" not in config.options()
    assert (
        load_settings({"backends": {"a": {"plugin": "memory"}}})
        .backends["a"]
        .circuit_breaker.enabled
    )


@pytest.mark.parametrize(
    "breaker", [{"failures": 0}, {"reset_after": -1}, {"failures": "many"}, {"typo": 1}]
)
def test_bad_circuit_breaker_settings_are_configuration_errors(breaker: dict[str, object]) -> None:
    with pytest.raises(ConfigurationError, match="circuit_breaker"):
        load_settings({"backends": {"a": {"plugin": "memory", "circuit_breaker": breaker}}})


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


class _SecretSettings(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")
    plugin: str = "vault"
    url: pydantic.SecretStr


class _VaultBackend(MemoryBackend):
    def __init__(self, settings: _SecretSettings, *, name: str = "vault") -> None:
        super().__init__(MemorySettings(), name=name)
        self.url = settings.url

    def __repr__(self) -> str:
        return f"<VaultBackend {self.name!r} url={redact_url(self.url.get_secret_value())!r}>"


class _VaultPlugin:
    __name__ = "vault"

    @hookimpl
    def polystore_register_backends(self, registry: BackendRegistry) -> None:
        registry.register(BackendSpec("vault", _VaultBackend, _SecretSettings, Capabilities.TTL))


@pytest.mark.asyncio
async def test_no_secret_reaches_logs_reprs_or_errors(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="polystore")
    config = {
        "backends": {"v": {"plugin": "vault", "url": f"vault://admin:{SECRET}@host/0"}},
        "routes": {"ledger": {"backend": "v", "requires": ["durable"]}},
    }
    manager = PluginManager(entry_points=False, plugins=[_VaultPlugin()])
    ps = Polystore.from_config(config, plugins=manager)
    with pytest.raises(RouteRequirementError) as info:
        await ps.start()
    assert any("opened" in record.getMessage() for record in caplog.records)
    assert all(SECRET not in record.getMessage() for record in caplog.records)
    assert SECRET not in str(info.value)
    assert SECRET not in repr(ps)
    assert SECRET not in repr(ps.settings)
