"""Optional backends: the application starts without them and picks them up once they answer.

A backend configured with ``required = false`` that cannot be reached at start-up does not
stop :meth:`Polystore.start() <polystore.Polystore.start>`. Instead its routes answer every
call at once, without I/O, with :class:`~polystore.errors.StoreUnavailableError`, while a
background task opens the backend again (after 0.5 s, then twice as long each time, at
most every 5 s). Once it has opened, calls go through: no restart is needed.

Capabilities a backend detects when it opens (Redis ``DURABLE``, MongoDB
``TRANSACTIONS``) are not known while it is down. At start-up a route on such a backend
is checked against the most its plugin can provide (a route that can never be served
still fails start-up); once the backend has opened, the route is checked against what
the backend really provides, and a route it does not satisfy answers every call with
:class:`~polystore.errors.RouteRequirementError` (and says so in the log at ERROR).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any

from polystore.errors import (
    PluginError,
    PolystoreError,
    RouteRequirementError,
    StoreUnavailableError,
)
from polystore.protocol import Backend, DataStore, DataStoreTransaction
from polystore.types import TTL, Capabilities, Entry, Health, JSONInput, JSONValue, Scalar, Version

__all__ = ["BackendAvailability", "GatedStore"]

logger = logging.getLogger("polystore")

FIRST_RETRY = 0.5
"""Seconds before the first background attempt to open a backend that was down."""
MAX_RETRY = 5.0
"""Most seconds between two attempts."""


class BackendAvailability:
    """Whether an optional backend that was down at start-up has opened since.

    Args:
        name: The backend's name.
        backend: The backend, not open.
        error: Why it could not be opened.
        first_retry: Seconds before the first attempt to open it again.
        max_retry: Most seconds between attempts (the delay doubles up to it).
        on_open: Called once the backend has opened.
    """

    def __init__(
        self,
        name: str,
        backend: Backend,
        error: PolystoreError,
        *,
        first_retry: float = FIRST_RETRY,
        max_retry: float = MAX_RETRY,
        on_open: Callable[[], None] | None = None,
    ) -> None:
        self.name = name
        self.backend = backend
        self.error = error
        self.available = False
        self.attempts = 1
        self._first_retry = first_retry
        self._max_retry = max_retry
        self._on_open = on_open
        self._task: asyncio.Task[None] | None = None
        self._opening = False
        self._closing = False

    def __repr__(self) -> str:
        state = "available" if self.available else f"down after {self.attempts} attempts"
        return f"<BackendAvailability {self.name!r} {state}>"

    def start(self) -> None:
        """Start opening the backend in the background."""
        if self._task is None and not self.available:
            self._task = asyncio.get_running_loop().create_task(
                self._reopen(), name=f"polystore: reopen backend {self.name}"
            )

    async def aclose(self) -> None:
        """Stop trying; returns once the background task has ended.

        An attempt in progress is let finish (within the backend's connect timeout) rather
        than cancelled: a driver cancelled while connecting can leave a connection behind.
        """
        task, self._task = self._task, None
        if task is not None:
            self._closing = True
            if not self._opening:
                task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    def check(self, operation: str) -> None:
        """Let a call through once the backend is open.

        Raises:
            StoreUnavailableError: The backend has not opened yet (no I/O is done).
        """
        if not self.available:
            raise StoreUnavailableError(
                f"optional backend {self.name!r} is not available: {self.error.message} "
                f"({self.attempts} attempts to open it so far; it is retried in the background)",
                backend=self.name,
                operation=operation,
            )

    async def _reopen(self) -> None:
        delay = self._first_retry
        while not self._closing:
            await asyncio.sleep(delay)
            delay = min(delay * 2, self._max_retry)
            self.attempts += 1
            self._opening = True
            try:
                await self.backend.open()
            except PolystoreError as exc:
                self.error = exc
                logger.debug("optional backend %s is still unavailable: %s", self.name, exc)
                continue
            except Exception as exc:  # noqa: BLE001 - a defect of the plugin: retrying is futile
                self.error = PluginError(
                    f"opening failed with an unexpected {type(exc).__name__}; not retried",
                    backend=self.name,
                    operation="open",
                )
                # No traceback: a driver's message may quote a URL, password included.
                logger.error("optional backend %s: %s", self.name, self.error.message)  # noqa: TRY400
                return
            finally:
                self._opening = False
            break
        if self._closing:
            return
        self.available = True
        logger.info("optional backend %s is available (attempt %d)", self.name, self.attempts)
        if self._on_open is not None:
            self._on_open()


class GatedStore:
    """A route's store on an optional backend: refused while the backend is down.

    Args:
        store: The store (possibly behind the backend's circuit breaker).
        availability: The backend's state.
        route: The route's name, for messages.
        requires: What the route requires, checked once the backend is open.
    """

    def __init__(
        self,
        store: DataStore,
        availability: BackendAvailability,
        *,
        route: str,
        requires: Capabilities,
    ) -> None:
        self.store = store
        self.availability = availability
        self.route = route
        self.requires = requires
        self.name: str = store.name

    @property
    def capabilities(self) -> Capabilities:
        """The wrapped store's capabilities (known in full once the backend is open)."""
        return self.store.capabilities

    @capabilities.setter
    def capabilities(self, value: Capabilities) -> None:
        self.store.capabilities = value

    def __repr__(self) -> str:
        return f"<GatedStore {self.store!r} {self.availability!r}>"

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)

    def unmet(self) -> RouteRequirementError | None:
        """The error of a route the open backend does not satisfy, or ``None``."""
        missing = self.requires & ~self.store.capabilities
        if not missing:
            return None
        return RouteRequirementError(
            f"route {self.route!r} requires {', '.join(missing.names())}, which optional "
            f"backend {self.availability.name!r} does not provide now that it is open; it "
            f"provides {', '.join(self.store.capabilities.names()) or 'nothing'}",
            route=self.route,
            missing=missing.names(),
            backend=self.availability.name,
        )

    def _check(self, operation: str) -> None:
        self.availability.check(operation)
        unmet = self.unmet()
        if unmet is not None:
            raise unmet

    async def get(self, key: str) -> JSONValue | None:
        self._check("get")
        return await self.store.get(key)

    async def get_entry(self, key: str) -> Entry | None:
        self._check("get_entry")
        return await self.store.get_entry(key)

    async def save(
        self,
        key: str,
        value: JSONInput,
        *,
        ttl: TTL | None = None,
        if_version: Version | None = None,
        if_absent: bool = False,
    ) -> Version:
        self._check("save")
        return await self.store.save(
            key, value, ttl=ttl, if_version=if_version, if_absent=if_absent
        )

    async def delete(self, key: str, *, if_version: Version | None = None) -> bool:
        self._check("delete")
        return await self.store.delete(key, if_version=if_version)

    async def exists(self, key: str) -> bool:
        self._check("exists")
        return await self.store.exists(key)

    async def get_many(self, keys: Sequence[str]) -> list[JSONValue | None]:
        self._check("get_many")
        return await self.store.get_many(keys)

    async def save_many(
        self,
        items: Mapping[str, JSONInput] | Iterable[tuple[str, JSONInput]],
        *,
        ttl: TTL | None = None,
    ) -> list[Version]:
        self._check("save_many")
        return await self.store.save_many(items, ttl=ttl)

    async def delete_many(self, keys: Sequence[str]) -> int:
        self._check("delete_many")
        return await self.store.delete_many(keys)

    async def find(self, where: Mapping[str, Scalar], *, limit: int | None = None) -> list[Entry]:
        self._check("find")
        return await self.store.find(where, limit=limit)

    def scan(self, *, prefix: str = "", batch_size: int = 500) -> AsyncIterator[str]:
        self._check("scan")
        return self.store.scan(prefix=prefix, batch_size=batch_size)

    def transaction(self) -> AbstractAsyncContextManager[DataStoreTransaction]:
        self._check("transaction")
        return self.store.transaction()

    async def health(self) -> Health:
        return await self.store.health()
