"""The one place a backend translates its driver's exceptions: :class:`ErrorMap`."""

from __future__ import annotations

from collections.abc import Sequence
from types import TracebackType
from typing import ClassVar

from polystore.errors import PolystoreError

__all__ = ["ErrorMap"]


class ErrorMap:
    """A context manager that turns driver exceptions raised in its block into polystore
    errors, chained with ``from``. polystore's own errors pass through untouched.

    A backend subclasses it once, as ``<Backend>Errors``, naming the driver exceptions it
    handles and how each becomes a polystore error; every backend uses it the same way, as
    a context manager around driver calls (or calls :meth:`translate` where a ``with``
    block does not fit)::

        class AcmeErrors(ErrorMap):
            driver_errors = (acme.Error, OSError)

            def translate(self, exc: BaseException) -> PolystoreError:
                text = redact_text(str(exc), self.secrets)
                return StoreUnavailableError(text, backend=self.backend,
                                             operation=self.operation, key=self.key)

        with AcmeErrors(store.name, "save", key, write=True):
            ...

    It is a small slotted class rather than a generator-based context manager because
    it sits on every call's hot path.

    Args:
        backend: The store or backend name, for the message.
        operation: The operation in progress.
        key: The key involved, if any.
        write: The block sends a write: a connection lost after sending means the
            outcome is unknown.
        secrets: Strings never to show in a message (the configured password).
    """

    __slots__ = ("backend", "key", "operation", "secrets", "write")

    driver_errors: ClassVar[tuple[type[BaseException], ...]] = ()

    def __init__(
        self,
        backend: str,
        operation: str,
        key: str | None = None,
        *,
        write: bool = False,
        secrets: Sequence[str] = (),
    ) -> None:
        self.backend = backend
        self.operation = operation
        self.key = key
        self.write = write
        self.secrets = secrets

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
