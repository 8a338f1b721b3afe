"""A third-party-style plugin, defined here, runs the conformance suite by subclassing only.

The plugin is deliberately small: a dict store that declares only ``scan`` and
``shared``-less basics. The suite runs every capability-free test against it and checks
that it refuses what it does not declare (ttl, cas, query, transactions).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Literal

import pytest_asyncio
from pydantic import BaseModel, ConfigDict

from polystore import (
    BackendRegistry,
    BackendSpec,
    BaseBackend,
    BaseStore,
    Capabilities,
    DataStore,
    Entry,
    Health,
    JSONValue,
    PluginManager,
    Version,
    hookimpl,
    new_version,
)
from polystore.testing import StoreConformance

TINY_CAPABILITIES = Capabilities.SCAN


class TinySettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    plugin: Literal["tiny"] = "tiny"


class TinyStore(BaseStore):
    def __init__(self, name: str) -> None:
        super().__init__(name, TINY_CAPABILITIES)
        self._rows: dict[str, tuple[bytes, Version]] = {}

    async def _get_entry(self, key: str) -> Entry | None:
        row = self._rows.get(key)
        return None if row is None else Entry(key, self.codec.decode(row[0]), row[1])

    async def _save(
        self,
        key: str,
        value: JSONValue,
        data: bytes,
        ttl: float | None,
        if_version: Version | None,
        if_absent: bool,
    ) -> Version:
        version = new_version()
        self._rows[key] = (data, version)
        return version

    async def _delete(self, key: str, if_version: Version | None) -> bool:
        return self._rows.pop(key, None) is not None

    async def _get_many(self, keys: list[str]) -> list[JSONValue | None]:
        return [await self._get(key) for key in keys]

    async def _save_many(
        self, items: list[tuple[str, JSONValue, bytes]], ttl: float | None
    ) -> list[Version]:
        return [await self._save(k, v, d, None, None, False) for k, v, d in items]

    async def _delete_many(self, keys: list[str]) -> int:
        return sum([await self._delete(key, None) for key in keys])

    async def _scan(self, prefix: str, batch_size: int) -> AsyncIterator[str]:
        for key in sorted(self._rows):
            if key.startswith(prefix):
                yield key

    async def _health(self) -> Health:
        return Health(ok=True, backend=self.name, latency_ms=0.0)


class TinyBackend(BaseBackend):
    def __init__(self, settings: TinySettings, *, name: str = "tiny") -> None:
        super().__init__(name, TINY_CAPABILITIES)

    async def _open(self) -> None:
        return None

    async def _close(self) -> None:
        return None

    def _make_store(self, namespace: str) -> DataStore:
        return TinyStore(f"{self.name}/{namespace}")

    async def _ping(self) -> str:
        return "tiny"


class TinyPlugin:
    __name__ = "tiny"

    @hookimpl
    def polystore_register_backends(self, registry: BackendRegistry) -> None:
        registry.register(BackendSpec("tiny", TinyBackend, TinySettings, TINY_CAPABILITIES))


@pytest_asyncio.fixture
async def tiny_backend() -> AsyncIterator[TinyBackend]:
    manager = PluginManager(entry_points=False, plugins=[TinyPlugin()])
    backend = manager.backends.get("tiny").build({"plugin": "tiny"}, instance_name="tiny")
    assert isinstance(backend, TinyBackend)
    async with backend:
        yield backend


class TestTinyThirdPartyStore(StoreConformance):
    @pytest_asyncio.fixture
    async def store(self, tiny_backend: TinyBackend) -> DataStore:
        return tiny_backend.namespace(f"t-{uuid.uuid4().hex}")

    @pytest_asyncio.fixture
    async def sibling_store(self, tiny_backend: TinyBackend) -> DataStore:
        return tiny_backend.namespace(f"s-{uuid.uuid4().hex}")
