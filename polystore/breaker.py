"""A circuit breaker per backend: when a store is down, fail fast instead of piling up.

After ``failures`` calls in a row have failed because the backend could not be reached
(:class:`~polystore.errors.StoreUnavailableError`, timeouts included, or
:class:`~polystore.errors.UnknownOutcomeError`), the breaker *opens*: every call on any
route of that backend raises :class:`CircuitOpenError` at once, without I/O, for
``reset_after`` seconds. Then one call goes through as a probe (*half-open*): if it
succeeds the breaker closes, if the backend is still unreachable it opens again. Other
errors (validation, conflicts, a missing capability) say nothing about the backend's
health and neither open nor close it.

So one dead or frozen store costs its callers one fast error instead of one timeout per
call, and never holds up the tasks that use the other stores. The :class:`Polystore`
router puts every route behind the breaker of its backend; settings per backend::

    [backends.cache.circuit_breaker]
    failures = 5          # consecutive unreachable calls that open it
    reset_after = 2.0     # seconds open before one probe call
    enabled = true
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from polystore.errors import StoreUnavailableError, UnknownOutcomeError
from polystore.protocol import DataStore, DataStoreTransaction
from polystore.types import TTL, Capabilities, Entry, Health, JSONInput, JSONValue, Scalar, Version

__all__ = [
    "CircuitBreaker",
    "CircuitBreakerSettings",
    "CircuitBreakerStore",
    "CircuitOpenError",
]

T = TypeVar("T")
State = Literal["closed", "open", "half_open"]


class CircuitOpenError(StoreUnavailableError):
    """The backend's circuit breaker is open: the call was refused without any I/O."""


class CircuitBreakerSettings(BaseModel):
    """Settings of one backend's circuit breaker."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    failures: int = Field(default=5, ge=1, le=1000)
    reset_after: float = Field(default=2.0, gt=0, le=3600)


class CircuitBreaker:
    """The state of one backend, shared by every store (route) on it.

    Args:
        name: The backend's name, for messages.
        failures: Consecutive unreachable calls that open the breaker.
        reset_after: Seconds the breaker stays open before it lets one probe through.
        clock: Monotonic clock in seconds (for tests).
    """

    __slots__ = ("_clock", "_failures", "_opened_at", "_probing", "failures", "name", "reset_after")

    def __init__(
        self,
        name: str,
        *,
        failures: int = 5,
        reset_after: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self.failures = failures
        self.reset_after = reset_after
        self._clock = clock
        self._failures = 0
        self._opened_at: float | None = None
        self._probing = False

    def __repr__(self) -> str:
        return f"<CircuitBreaker {self.name!r} {self.state} failures={self._failures}>"

    @classmethod
    def from_settings(cls, name: str, settings: CircuitBreakerSettings) -> CircuitBreaker:
        """A breaker configured by ``settings``."""
        return cls(name, failures=settings.failures, reset_after=settings.reset_after)

    @property
    def state(self) -> State:
        """``closed`` (calls flow), ``open`` (calls refused) or ``half_open`` (probe due)."""
        if self._opened_at is None:
            return "closed"
        if self._probing or self._clock() - self._opened_at < self.reset_after:
            return "open"
        return "half_open"

    def before(self, operation: str) -> None:
        """Admit a call, or refuse it.

        Raises:
            CircuitOpenError: The breaker is open, or a probe is already in flight.
        """
        if self._opened_at is None:
            return
        if self.state == "open":
            raise CircuitOpenError(
                f"circuit open after {self._failures} failed calls in a row; the backend "
                f"is not called for {self.reset_after:g} s, then one call probes it",
                backend=self.name,
                operation=operation,
            )
        self._probing = True

    def success(self) -> None:
        """Record a call that reached the backend: the breaker closes."""
        self._failures = 0
        self._opened_at = None
        self._probing = False

    def failure(self, exc: BaseException) -> None:
        """Record a call that raised ``exc``; only unreachable-backend errors count."""
        if isinstance(exc, CircuitOpenError):
            return
        if not isinstance(exc, (StoreUnavailableError, UnknownOutcomeError)):
            if self._probing:  # the probe says nothing: let the next call probe
                self._probing = False
            return
        self._failures += 1
        if self._probing or self._failures >= self.failures:
            self._opened_at = self._clock()
        self._probing = False

    async def call(self, operation: str, work: Callable[[], Awaitable[T]]) -> T:
        """Run ``work()`` under the breaker."""
        self.before(operation)
        try:
            result = await work()
        except BaseException as exc:
            self.failure(exc)
            raise
        self.success()
        return result


class CircuitBreakerStore:
    """A :class:`~polystore.protocol.DataStore` that calls another through a breaker.

    ``health()`` always reaches the backend (and says nothing to the breaker); attributes
    the wrapped store has beyond the protocol are passed through.
    """

    def __init__(self, store: DataStore, breaker: CircuitBreaker) -> None:
        self.store = store
        self.breaker = breaker
        self.name: str = store.name

    @property
    def capabilities(self) -> Capabilities:
        """The wrapped store's capabilities (read through: a backend may learn more of
        them when it opens)."""
        return self.store.capabilities

    @capabilities.setter
    def capabilities(self, value: Capabilities) -> None:
        self.store.capabilities = value

    def __repr__(self) -> str:
        return f"<CircuitBreakerStore {self.store!r} {self.breaker.state}>"

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)

    async def get(self, key: str) -> JSONValue | None:
        return await self.breaker.call("get", lambda: self.store.get(key))

    async def get_entry(self, key: str) -> Entry | None:
        return await self.breaker.call("get_entry", lambda: self.store.get_entry(key))

    async def save(
        self,
        key: str,
        value: JSONInput,
        *,
        ttl: TTL | None = None,
        if_version: Version | None = None,
        if_absent: bool = False,
    ) -> Version:
        return await self.breaker.call(
            "save",
            lambda: self.store.save(
                key, value, ttl=ttl, if_version=if_version, if_absent=if_absent
            ),
        )

    async def delete(self, key: str, *, if_version: Version | None = None) -> bool:
        return await self.breaker.call(
            "delete", lambda: self.store.delete(key, if_version=if_version)
        )

    async def exists(self, key: str) -> bool:
        return await self.breaker.call("exists", lambda: self.store.exists(key))

    async def get_many(self, keys: Sequence[str]) -> list[JSONValue | None]:
        return await self.breaker.call("get_many", lambda: self.store.get_many(keys))

    async def save_many(
        self,
        items: Mapping[str, JSONInput] | Iterable[tuple[str, JSONInput]],
        *,
        ttl: TTL | None = None,
    ) -> list[Version]:
        return await self.breaker.call("save_many", lambda: self.store.save_many(items, ttl=ttl))

    async def delete_many(self, keys: Sequence[str]) -> int:
        return await self.breaker.call("delete_many", lambda: self.store.delete_many(keys))

    async def find(self, where: Mapping[str, Scalar], *, limit: int | None = None) -> list[Entry]:
        return await self.breaker.call("find", lambda: self.store.find(where, limit=limit))

    def scan(self, *, prefix: str = "", batch_size: int = 500) -> AsyncIterator[str]:
        keys = self.store.scan(prefix=prefix, batch_size=batch_size)  # checks its arguments
        return self._scan(keys)

    async def _scan(self, keys: AsyncIterator[str]) -> AsyncIterator[str]:
        self.breaker.before("scan")
        try:
            async for key in keys:
                yield key
        except BaseException as exc:
            self.breaker.failure(exc)
            raise
        self.breaker.success()

    def transaction(self) -> AbstractAsyncContextManager[DataStoreTransaction]:
        return self._transaction()

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[DataStoreTransaction]:
        self.breaker.before("transaction")
        try:
            async with self.store.transaction() as tx:
                yield tx
        except BaseException as exc:
            self.breaker.failure(exc)
            raise
        self.breaker.success()

    async def health(self) -> Health:
        return await self.store.health()
