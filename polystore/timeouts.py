"""One timeout for the whole of a call.

A store's ``timeout`` bounds each of its calls from the moment it is made to the moment
it returns: pool waits, reconnects, server selection, the request itself, and retries
with their back-off all spend the same budget, never a fresh one. Two mechanisms keep it:

- the call's deadline is recorded in a :func:`~polystore.deadlines.budget`, so the steps
  below it (the retry policy, a pool's acquire, a driver's own timeout argument) use what
  is left (:func:`~polystore.deadlines.remaining`) and fail with their precise error;
- the call as a whole is awaited under a :class:`~polystore.deadlines.DeadlineWatch`, so
  a step that cannot be told its budget (a driver reconnecting inside, a frozen server
  accepting a connection but never answering) is cancelled when the deadline passes.

A read cut short raises :class:`~polystore.errors.StoreTimeoutError`; a write cut short
raises :class:`~polystore.errors.UnknownOutcomeError`, since it may have reached the
server before the deadline.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import TypeVar

from polystore.deadlines import DeadlineWatch, end_budget, start_budget
from polystore.errors import StoreError, StoreTimeoutError, UnknownOutcomeError

__all__ = ["CallTimeout"]

T = TypeVar("T")


class CallTimeout:
    """Bounds every call of one store by the store's timeout.

    Args:
        name: The store's name, for error messages.
        timeout: Seconds one call may take, everything included.
    """

    __slots__ = ("_watch", "name", "timeout")

    def __init__(self, name: str, timeout: float) -> None:
        self.name = name
        self.timeout = timeout
        self._watch = DeadlineWatch()

    def __repr__(self) -> str:
        return f"<CallTimeout {self.name!r} {self.timeout:g}s>"

    def error(self, operation: str, key: str | None, *, write: bool) -> StoreError:
        """The error of a call of ``operation`` cut short at its deadline."""
        if write:
            return UnknownOutcomeError(
                f"no answer within the timeout of {self.timeout:g} s; the write may or "
                "may not have been applied",
                backend=self.name,
                operation=operation,
                key=key,
            )
        return StoreTimeoutError(
            f"no answer within the timeout of {self.timeout:g} s",
            backend=self.name,
            operation=operation,
            key=key,
        )

    async def run(
        self, operation: str, key: str | None, work: Awaitable[T], *, write: bool = False
    ) -> T:
        """Await ``work`` within the timeout (or what an enclosing call has left).

        Raises:
            StoreTimeoutError: A read did not finish in time.
            UnknownOutcomeError: A write did not finish in time.
        """
        seconds, token = start_budget(self.timeout)
        try:
            return await self._watch.wait(work, seconds)
        except StoreError:
            raise
        except TimeoutError:
            raise self.error(operation, key, write=write) from None
        finally:
            end_budget(token)

    async def scan(self, keys: AsyncIterator[str], operation: str = "scan") -> AsyncIterator[str]:
        """Yield ``keys``, each one (the first included) within the timeout."""
        try:
            while True:
                try:
                    key = await self.run(operation, None, anext(keys))
                except StopAsyncIteration:
                    return
                yield key
        finally:
            aclose = getattr(keys, "aclose", None)
            if aclose is not None:
                await aclose()

    @asynccontextmanager
    async def transaction(self, scope: AbstractAsyncContextManager[T]) -> AsyncIterator[T]:
        """Enter and leave ``scope`` each within the timeout; the body is the caller's.

        Leaving without an error commits: if that is cut short the outcome is unknown.
        """
        entered = await self.run("transaction", None, scope.__aenter__())
        try:
            yield entered
        except BaseException as exc:
            try:
                suppress = await self.run(
                    "rollback", None, scope.__aexit__(type(exc), exc, exc.__traceback__)
                )
            except StoreTimeoutError:
                raise exc from None  # the body's error says more than the rollback's
            if not suppress:
                raise
        else:
            await self.run("commit", None, scope.__aexit__(None, None, None), write=True)
