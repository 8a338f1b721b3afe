"""Retry policy for idempotent operations: exponential backoff with full jitter."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

from pydantic import BaseModel, ConfigDict, Field

from polystore.deadlines import current_deadline
from polystore.errors import StoreError, StoreUnavailableError
from polystore.telemetry import add_event

__all__ = ["RetryPolicy", "RetrySettings"]

logger = logging.getLogger("polystore.retry")

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    """How to retry an idempotent operation.

    Only errors listed in ``retry_on`` are retried (by default
    :class:`StoreUnavailableError`, which includes timeouts). Writes whose outcome is
    unknown raise :class:`~polystore.errors.UnknownOutcomeError` and are never retried.
    Retries spend what is left of the call's timeout, never more: a retry whose back-off
    would end past the call's deadline is not made (the last error is raised instead).

    Attributes:
        attempts: Total tries, the first included (1 disables retries).
        base_delay: Delay before the first retry, in seconds.
        max_delay: Cap on any one delay, in seconds.
        retry_on: Error types that are safe to retry.
    """

    attempts: int = 3
    base_delay: float = 0.05
    max_delay: float = 1.0
    retry_on: tuple[type[StoreError], ...] = field(default=(StoreUnavailableError,))

    def delay(self, retry_number: int) -> float:
        """Seconds to wait before retry ``retry_number`` (1-based), with full jitter."""
        ceiling = min(self.max_delay, self.base_delay * (2 ** (retry_number - 1)))
        return random.uniform(0, ceiling)  # noqa: S311 - jitter, not cryptography

    async def retry(
        self,
        first_error: StoreError,
        call: Callable[[], Awaitable[T]],
        *,
        deadline: float | None = None,
    ) -> T:
        """Retry ``call`` after it failed once with ``first_error``.

        Args:
            first_error: What the first attempt raised.
            call: Makes one more attempt.
            deadline: ``time.monotonic()`` by which the call must have ended; the running
                call's budget (:func:`~polystore.deadlines.budget`) when omitted.

        Raises:
            StoreError: The last error when every attempt failed, or ``first_error``
                itself when it is not retryable.
        """
        if not isinstance(first_error, self.retry_on) or self.attempts <= 1:
            raise first_error
        if deadline is None:
            deadline = current_deadline()
        error = first_error
        for number in range(1, self.attempts):
            pause = self.delay(number)
            if deadline is not None and time.monotonic() + pause >= deadline:
                break  # no time left for another attempt
            _log_retry(error, number, self.attempts, pause)
            await asyncio.sleep(pause)
            try:
                return await call()
            except self.retry_on as exc:
                error = exc
        raise error


class RetrySettings(BaseModel):
    """Settings form of :class:`RetryPolicy`, for configuration files."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    attempts: int = Field(default=3, ge=1, le=20)
    base_delay: float = Field(default=0.05, ge=0, le=60)
    max_delay: float = Field(default=1.0, ge=0, le=600)

    def policy(self) -> RetryPolicy:
        """Build the policy object."""
        return RetryPolicy(
            attempts=self.attempts, base_delay=self.base_delay, max_delay=self.max_delay
        )


def _log_retry(error: StoreError, number: int, attempts: int, pause: float) -> None:
    """A log record and a span event for one retry; the error's message is left out (it
    may name the key)."""
    error_type = f"{type(error).__module__}.{type(error).__qualname__}"
    logger.info(
        "retrying %s on %s (retry %d of %d in %.3f s) after %s",
        error.operation or "call",
        error.backend or "store",
        number,
        attempts - 1,
        pause,
        type(error).__name__,
    )
    add_event(
        "polystore.retry",
        {
            "polystore.retry.number": number,
            "polystore.retry.delay": pause,
            "error.type": error_type,
        },
    )
