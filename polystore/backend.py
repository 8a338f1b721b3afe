"""The ABC that backend implementations subclass: lazy idempotent open, namespaces."""

from __future__ import annotations

import asyncio
import logging
import time
from abc import ABC, abstractmethod
from types import TracebackType
from typing import TypeVar

from polystore.deadlines import DeadlineWatch, budget
from polystore.errors import PolystoreError, StoreUnavailableError, ValidationError
from polystore.protocol import DataStore
from polystore.redact import redact_text
from polystore.types import Capabilities, Health

__all__ = ["BaseBackend", "validate_namespace"]

logger = logging.getLogger("polystore")

_MAX_NAMESPACE = 128
_B = TypeVar("_B", bound="BaseBackend")


def validate_namespace(name: object) -> str:
    """Namespaces are 1-128 characters from ``[A-Za-z0-9_.:/-]``.

    They become parts of table names, key prefixes and collection names, so they are
    held to an allow-list rather than escaped.

    Raises:
        ValidationError: The name is not acceptable.
    """
    if not isinstance(name, str) or not 0 < len(name) <= _MAX_NAMESPACE:
        raise ValidationError(f"namespace must be 1-{_MAX_NAMESPACE} characters of str")
    if not all(c.isascii() and (c.isalnum() or c in "_.:/-") for c in name):
        raise ValidationError(
            f"namespace {name!r} may only contain ASCII letters, digits and _ . : / -"
        )
    return name


class BaseBackend(ABC):
    """Implementation base for a :class:`~polystore.protocol.Backend`.

    Subclasses implement :meth:`_open`, :meth:`_close`, :meth:`_make_store` and
    :meth:`_ping`. Opening is lazy, idempotent and guarded by a lock; stores are
    created once per namespace.
    """

    name: str
    timeout: float | None = None
    """Seconds a call may take, everything included; :meth:`health` answers within it.
    Subclasses set it from their settings (``None``: unbounded)."""

    def __init__(self, name: str, capabilities: Capabilities) -> None:
        self.name = name
        self._capabilities = capabilities
        self._stores: dict[str, DataStore] = {}
        self._open_lock: asyncio.Lock | None = None
        self._opened = False
        self._closed = False

    @property
    def capabilities(self) -> Capabilities:
        """What this backend's stores guarantee."""
        return self._capabilities

    async def open(self) -> None:
        """Connect and detect capabilities; safe to call more than once."""
        if self._opened:
            return
        if self._closed:
            raise StoreUnavailableError("backend is closed", backend=self.name, operation="open")
        if self._open_lock is None:
            self._open_lock = asyncio.Lock()
        async with self._open_lock:
            if self._closed:  # closed while this call waited for the lock
                raise StoreUnavailableError(
                    "backend is closed", backend=self.name, operation="open"
                )
            if not self._opened:
                await self._open()
                self._opened = True
                # repr() of a backend shows redacted URLs only.
                logger.info("opened %r (%s)", self, ",".join(self.capabilities.names()))

    async def aclose(self) -> None:
        """Release what the backend owns. Idempotent; ``_close`` must cope with a backend
        that was never opened."""
        if self._closed:
            return
        self._closed = True
        await self._wait_for_open()
        # Also when open() never ran: a driver may have created a lazy client already.
        await self._close()
        if self._opened:
            logger.info("closed %r", self)

    async def _wait_for_open(self) -> None:
        """Wait until an :meth:`open` in progress has ended (opened or failed).

        Closing under a running ``_open`` would pull the client from under it; afterwards
        ``_close`` sees everything the open made and releases it.
        """
        if self._open_lock is not None and self._open_lock.locked():
            async with self._open_lock:
                pass

    def namespace(self, name: str) -> DataStore:
        """Return the store of namespace ``name`` (created on first use)."""
        store = self._stores.get(name)
        if store is None:
            store = self._make_store(validate_namespace(name))
            self._stores[name] = store
        return store

    secrets: tuple[str, ...] = ()
    """Strings never shown in a health check's detail (a password of the configured URL);
    subclasses that hold credentials set it."""

    async def health(self) -> Health:
        """Check that the server answers, within :attr:`timeout`; never raises for an
        unreachable or frozen server.

        Times :meth:`_ping`, bounds it by :attr:`timeout` and reports any error it raises
        as ``ok=False`` with a redacted message. Cancellation passes through.
        """
        timeout = self.timeout
        started = time.perf_counter()
        try:
            if timeout is None:
                detail = await self._ping()
            else:
                with budget(timeout) as seconds:
                    detail = await DeadlineWatch().wait(self._ping(), seconds)
        except TimeoutError:
            detail, ok = f"no answer within the timeout of {timeout:g} s", False
        except PolystoreError as exc:
            detail, ok = redact_text(exc.message, self.secrets), False
        except Exception as exc:  # noqa: BLE001 - health reports every failure, raises none
            detail, ok = redact_text(f"{type(exc).__name__}: {exc}", self.secrets), False
        else:
            ok = True
        latency = (time.perf_counter() - started) * 1000
        return Health(ok=ok, backend=self.name, latency_ms=latency, detail=detail)

    async def __aenter__(self: _B) -> _B:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    @abstractmethod
    async def _open(self) -> None: ...

    @abstractmethod
    async def _close(self) -> None: ...

    @abstractmethod
    def _make_store(self, namespace: str) -> DataStore: ...

    @abstractmethod
    async def _ping(self) -> str:
        """Ask the server for the smallest answer it gives (``PING``, ``SELECT 1``) and
        return a short description of it (server and version), never a secret.

        Raise on failure (translated by the backend's error map, or not): :meth:`health`
        times the call, applies :attr:`timeout` and reports errors.
        """
