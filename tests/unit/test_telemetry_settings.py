"""The ``[telemetry]`` settings: known to the loader, kept when settings are resolved."""

from __future__ import annotations

import pytest

from polystore import ConfigurationError, load_settings
from polystore.telemetry import TelemetrySettings, available


def test_telemetry_is_on_by_default() -> None:
    assert load_settings({}).telemetry == TelemetrySettings(enabled=True)


def test_an_environment_variable_turns_it_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POLYSTORE_TELEMETRY__ENABLED", "false")
    assert load_settings().resolved().telemetry.enabled is False


def test_the_table_turns_it_off_and_resolving_keeps_it() -> None:
    settings = load_settings({"telemetry": {"enabled": False}})
    assert settings.resolved().telemetry.enabled is False


def test_an_unknown_telemetry_option_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="telemetry"):
        load_settings({"telemetry": {"enable": False}})


def test_the_api_is_importable_in_the_test_environment() -> None:
    assert available()
