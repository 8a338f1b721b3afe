"""The one place a backend translates its driver's exceptions: :class:`ErrorMap`."""

from __future__ import annotations

from types import TracebackType
from typing import ClassVar

from polystore.errors import PolystoreError

__all__ = ["ErrorMap"]


class ErrorMap:
    """A context manager that turns driver exceptions raised in its block into polystore
    errors, chained with ``from``. polystore's own errors pass through untouched.

    A backend subclasses it once, naming the driver exceptions it handles and how each
    becomes a polystore error::

        class map_errors(ErrorMap):
            driver_errors = (acme.Error, OSError)

            def translate(self, exc: BaseException) -> PolystoreError:
                return StoreUnavailableError(str(exc), backend=self.backend,
                                             operation=self.operation, key=self.key)

        with map_errors(store.name, "get", key):
            ...

    It is a small slotted class rather than a generator-based context manager because
    it sits on every call's hot path.

    Args:
        backend: The store or backend name, for the message.
        operation: The operation in progress.
        key: The key involved, if any.
        write: The block sends a write: a connection lost after sending means the
            outcome is unknown.
    """

    __slots__ = ("backend", "key", "operation", "write")

    driver_errors: ClassVar[tuple[type[BaseException], ...]] = ()

    def __init__(
        self, backend: str, operation: str, key: str | None = None, *, write: bool = False
    ) -> None:
        self.backend = backend
        self.operation = operation
        self.key = key
        self.write = write

    def __enter__(self) -> None:
        return None

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if (
            exc is not None
            and isinstance(exc, self.driver_errors)
            and not isinstance(exc, PolystoreError)
        ):
            raise self.translate(exc) from exc

    def translate(self, exc: BaseException) -> PolystoreError:
        """The polystore error for driver exception ``exc``."""
        raise NotImplementedError
