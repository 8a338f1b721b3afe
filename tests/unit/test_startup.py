"""Start-up rules that need no server: a backend plugin whose open() fails as told."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any, Literal

import pytest
from pydantic import BaseModel, ConfigDict

from polystore import Polystore
from polystore.backends.memory import MemoryBackend, MemorySettings
from polystore.errors import (
    ConfigurationError,
    PluginError,
    StoreUnavailableError,
)
from polystore.hookspecs import hookimpl
from polystore.plugins import PluginManager
from polystore.registry import BackendRegistry, BackendSpec
from polystore.settings import BackendConfig
from polystore.testing import eventually
from polystore.types import Capabilities

OUTAGES: dict[str, list[BaseException]] = {}
"""Errors the next open() of each backend raises, by backend name, in order."""
BUILT: list[FlakyBackend] = []
SLOW_OPENS: dict[str, asyncio.Event] = {}
"""Backends whose next successful open() waits for the event; set while it waits."""
OPENING: dict[str, asyncio.Event] = {}
OPENED: list[str] = []


class FlakySettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    plugin: Literal["flaky"] = "flaky"


class FlakyBackend(MemoryBackend):
    def __init__(self, settings: FlakySettings, *, name: str = "flaky") -> None:
        super().__init__(MemorySettings(), name=name)
        BUILT.append(self)

    async def _open(self) -> None:
        await asyncio.sleep(0.01)  # siblings are still opening when one fails
        failures = OUTAGES.get(self.name)
        if failures:
            raise failures.pop(0)
        release = SLOW_OPENS.pop(self.name, None)
        if release is not None:
            OPENING.setdefault(self.name, asyncio.Event()).set()
            await release.wait()
        OPENED.append(self.name)


class FlakyPlugin:
    __name__ = "flaky"

    @hookimpl
    def polystore_register_backends(self, registry: BackendRegistry) -> None:
        registry.register(
            BackendSpec("flaky", FlakyBackend, FlakySettings, Capabilities.TTL | Capabilities.CAS)
        )


@pytest.fixture(autouse=True)
def _reset() -> Iterator[None]:
    yield
    OUTAGES.clear()
    BUILT.clear()
    SLOW_OPENS.clear()
    OPENING.clear()
    OPENED.clear()


def _app(*, optional: tuple[str, ...] = ()) -> Polystore:
    config: dict[str, Any] = {
        "backends": {
            name: {"plugin": "flaky", "required": name not in optional}
            for name in ("first", "second", "third")
        },
        "routes": {
            route: {"backend": backend, "requires": ["ttl"]}
            for route, backend in (("a", "first"), ("b", "second"), ("c", "third"))
        },
    }
    manager = PluginManager(entry_points=False, plugins=[FlakyPlugin()])
    return Polystore.from_config(config, plugins=manager)


def _others() -> set[asyncio.Task[Any]]:
    return {t for t in asyncio.all_tasks() if t is not asyncio.current_task()}


def test_required_defaults_to_true_and_is_not_a_plugin_option() -> None:
    config = BackendConfig.model_validate({"plugin": "redis", "required": False, "url": "x"})

    assert BackendConfig(plugin="redis").required is True
    assert config.required is False
    assert config.options() == {"plugin": "redis", "url": "x"}


@pytest.mark.asyncio
async def test_an_unexpected_exception_from_open_is_a_plugin_error_naming_the_backend() -> None:
    OUTAGES["second"] = [RuntimeError("boom")]
    ps = _app()

    with pytest.raises(PluginError) as raised:
        await ps.start()

    assert raised.value.backend == "second"
    assert "RuntimeError" in str(raised.value)
    assert isinstance(raised.value.__cause__, RuntimeError)
    assert [backend._closed for backend in BUILT] == [True, True, True]
    assert _others() == set()


@pytest.mark.asyncio
async def test_a_polystore_error_without_a_backend_gets_its_name() -> None:
    OUTAGES["third"] = [StoreUnavailableError("refused")]

    with pytest.raises(StoreUnavailableError) as raised:
        await _app().start()

    assert raised.value.backend == "third"
    assert "backend='third'" in str(raised.value)


@pytest.mark.asyncio
async def test_an_optional_backend_with_a_configuration_error_still_fails_start() -> None:
    OUTAGES["second"] = [ConfigurationError("bad credentials")]

    with pytest.raises(ConfigurationError):
        await _app(optional=("second",)).start()

    assert all(backend._closed for backend in BUILT)


@pytest.mark.asyncio
async def test_an_optional_backend_opens_in_the_background_and_its_route_then_works() -> None:
    OUTAGES["second"] = [StoreUnavailableError("down"), StoreUnavailableError("still down")]
    async with _app(optional=("second",)) as ps:
        with pytest.raises(StoreUnavailableError, match="optional backend 'second'"):
            await ps.route("b").save("k", 1)
        await ps.route("a").save("k", 1)  # the others serve meanwhile

        async def serves() -> bool:
            try:
                await ps.route("b").save("k", 2)
            except StoreUnavailableError:
                return False
            return True

        assert await eventually(serves, timeout=15)
        assert await ps.route("b").get("k") == 2
        assert OUTAGES["second"] == []  # it took the attempts it was refused


@pytest.mark.asyncio
async def test_closing_stops_the_background_reopen() -> None:
    OUTAGES["second"] = [StoreUnavailableError("down")] * 1000
    ps = _app(optional=("second",))
    await ps.start()
    assert any("reopen backend second" in t.get_name() for t in _others())

    await ps.aclose()

    assert _others() == set()
    assert all(backend._closed for backend in BUILT)


@pytest.mark.asyncio
async def test_closing_lets_an_open_in_progress_finish_instead_of_cancelling_it() -> None:
    OUTAGES["second"] = [StoreUnavailableError("down")]
    release = SLOW_OPENS["second"] = asyncio.Event()
    OPENING["second"] = asyncio.Event()
    ps = _app(optional=("second",))
    await ps.start()
    await asyncio.wait_for(OPENING["second"].wait(), 15)  # the background attempt runs

    closing = asyncio.ensure_future(ps.aclose())
    await asyncio.sleep(0.05)
    assert not closing.done()  # it waits for the attempt
    release.set()
    await closing

    assert OPENED.count("second") == 1  # completed, not cancelled half-way
    assert all(backend._closed for backend in BUILT)
    assert _others() == set()


@pytest.mark.asyncio
async def test_an_unexpected_exception_stops_the_background_reopen(
    caplog: pytest.LogCaptureFixture,
) -> None:
    OUTAGES["second"] = [StoreUnavailableError("down"), RuntimeError("bug")]
    async with _app(optional=("second",)) as ps:

        async def given_up() -> bool:
            return "not retried" in caplog.text

        assert await eventually(given_up, timeout=15)
        with pytest.raises(StoreUnavailableError, match="unexpected RuntimeError"):
            await ps.route("b").get("k")
        assert OPENED.count("second") == 0
