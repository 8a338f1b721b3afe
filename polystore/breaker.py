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

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from polystore.errors import StoreUnavailableError, UnknownOutcomeError
from polystore.protocol import DataStore
from polystore.telemetry import add_event
from polystore.wrapper import StoreWrapper

__all__ = [
    "CircuitBreaker",
    "CircuitBreakerSettings",
    "CircuitBreakerStore",
    "CircuitOpenError",
]

logger = logging.getLogger("polystore.breaker")

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
        if self._opened_at is not None:
            logger.info("circuit breaker of backend %s closed: a probe call succeeded", self.name)
            add_event("polystore.circuit_breaker.closed", {"polystore.backend": self.name})
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
            logger.warning(
                "circuit breaker of backend %s opened after %d unreachable calls in a row "
                "(last: %s); calls fail fast for %g s, then one probes",
                self.name,
                self._failures,
                type(exc).__name__,
                self.reset_after,
            )
            add_event(
                "polystore.circuit_breaker.opened",
                {
                    "polystore.backend": self.name,
                    "polystore.failures": self._failures,
                    "error.type": f"{type(exc).__module__}.{type(exc).__qualname__}",
                },
            )
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


class CircuitBreakerStore(StoreWrapper):
    """A :class:`~polystore.protocol.DataStore` that calls another through a breaker.

    ``health()`` always reaches the backend (and says nothing to the breaker); attributes
    the wrapped store has beyond the protocol are passed through.

    Args:
        store: The store to guard.
        breaker: The breaker of the store's backend, shared by all its routes.
    """

    def __init__(self, store: DataStore, breaker: CircuitBreaker) -> None:
        super().__init__(store)
        self.breaker = breaker

    def __repr__(self) -> str:
        return f"<CircuitBreakerStore {self.store!r} {self.breaker.state}>"

    async def _call(self, operation: str, call: Callable[[], Awaitable[T]], *, keys: int = 1) -> T:
        breaker = self.breaker  # CircuitBreaker.call inlined: one frame less on every call
        breaker.before(operation)
        try:
            result = await call()
        except BaseException as exc:
            breaker.failure(exc)
            raise
        breaker.success()
        return result

    @asynccontextmanager
    async def _guard(self, operation: str) -> AsyncIterator[None]:
        self.breaker.before(operation)
        try:
            yield
        except BaseException as exc:
            self.breaker.failure(exc)
            raise
        self.breaker.success()
