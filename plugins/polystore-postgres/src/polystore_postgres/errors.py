"""Translation of asyncpg and socket errors into polystore errors: the one place it happens.

Every error raised here is a :class:`PostgresStoreError`, so the server's structured
fields stay reachable as attributes (``sqlstate``, ``constraint_name``, ``table_name``),
and the driver's exception is chained as ``__cause__``::

    PostgresStoreError (StoreError)            other server or driver errors
    ├── PostgresUnavailableError (StoreUnavailableError)  refused, reset, shutting down
    │   └── PostgresTimeoutError (StoreTimeoutError)      timed out; nothing was applied
    ├── PostgresUnknownOutcomeError (UnknownOutcomeError) a sent write lost its answer
    └── SerializationConflictError (ConflictError)        SQLSTATE 40001 / 40P01

Messages name backend, operation and key, and never contain a password: driver text is
redacted (URL user-info, ``password=...``) and the configured secrets are scrubbed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import asyncpg  # type: ignore[import-untyped,unused-ignore]

from polystore import (
    ConflictError,
    PolystoreError,
    StoreError,
    StoreTimeoutError,
    StoreUnavailableError,
    UnknownOutcomeError,
)
from polystore.spi import ErrorMap, redact_text

__all__ = [
    "DRIVER_ERRORS",
    "PostgresErrors",
    "PostgresStoreError",
    "PostgresTimeoutError",
    "PostgresUnavailableError",
    "PostgresUnknownOutcomeError",
    "SerializationConflictError",
    "connection_suspect",
]

DRIVER_ERRORS: tuple[type[BaseException], ...] = (
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
    OSError,
    TimeoutError,
    asyncio.TimeoutError,
)
"""Exceptions that :class:`PostgresErrors` understands; anything else is a bug and propagates."""

_CONFLICT_STATES = frozenset({"40001", "40P01"})
_CANCELLED_STATES = frozenset({"57014", "55P03"})  # statement_timeout / lock_timeout
# The server went away or cannot take us now; a statement in flight may have run.
_GONE_STATES = frozenset({"57P01", "57P02", "57P05"})
# Refused before anything ran: start-up, too many connections, out of resources, or a
# read-only server (a standby, or a primary being demoted during a failover).
_REFUSED_STATES = frozenset({"57P03", "53300", "53400", "25006"})
_LOST_CONNECTION_SIGNS = ("closed", "closing", "another operation", "released back to the pool")


class PostgresStoreError(StoreError):
    """A PostgreSQL error, with the server's structured fields.

    Attributes:
        sqlstate: The five-character SQLSTATE, when the server sent one.
        constraint_name: The violated constraint, for integrity errors.
        table_name: The table the error concerns, when known.
    """

    def __init__(
        self,
        message: str,
        *,
        backend: str | None = None,
        operation: str | None = None,
        key: str | None = None,
        sqlstate: str | None = None,
        constraint_name: str | None = None,
        table_name: str | None = None,
    ) -> None:
        self.sqlstate = sqlstate
        self.constraint_name = constraint_name
        self.table_name = table_name
        super().__init__(message, backend=backend, operation=operation, key=key)


class PostgresUnavailableError(PostgresStoreError, StoreUnavailableError):
    """The server cannot be reached or is shutting down; nothing was applied."""


class PostgresTimeoutError(PostgresStoreError, StoreTimeoutError):
    """A call did not finish in time; nothing was applied (reads, or the server cancelled)."""


class PostgresUnknownOutcomeError(PostgresStoreError, UnknownOutcomeError):
    """A write was sent, then the connection failed or timed out: it may have been applied."""


class SerializationConflictError(PostgresStoreError, ConflictError):
    """A concurrent transaction conflicted (SQLSTATE 40001 or 40P01); nothing was applied.

    Re-running the whole unit of work is safe: use ``run_transaction``.
    """


def scrub(text: str, secrets: Sequence[str] = ()) -> str:
    """Remove passwords from driver text (:func:`polystore.redact.redact_text`)."""
    return redact_text(text, secrets)


def _translate(
    exc: BaseException,
    *,
    backend: str,
    operation: str,
    key: str | None,
    write: bool,
    secrets: Sequence[str],
) -> PolystoreError:
    """The polystore error for a driver exception (the caller chains it with ``from``).

    Args:
        exc: One of :data:`DRIVER_ERRORS` (or a polystore error, returned as is).
        backend: Store or backend name for the message.
        operation: Operation name for the message.
        key: Key involved, if any.
        write: A non-idempotent write had been sent when ``exc`` happened, so a lost
            connection or a client-side timeout leaves its outcome unknown.
        secrets: Strings to scrub from the message.
    """
    if isinstance(exc, PolystoreError):
        return exc
    context: dict[str, Any] = {"backend": backend, "operation": operation, "key": key}
    detail = scrub(f"{type(exc).__name__}: {exc}", secrets)
    if isinstance(exc, (TimeoutError, asyncio.TimeoutError)):
        if write:
            return PostgresUnknownOutcomeError(
                "timed out after the write was sent; it may or may not have been applied",
                **context,
            )
        return PostgresTimeoutError("timed out", **context)
    if isinstance(exc, asyncpg.PostgresError):
        return _server_error(exc, detail, context, write)
    if isinstance(exc, asyncpg.InterfaceError):
        text = str(exc)
        # A connection that dies is also handed back to the pool by asyncpg, so a
        # transaction's next statement reports "released back to the pool".
        if any(sign in text for sign in _LOST_CONNECTION_SIGNS):
            return PostgresUnavailableError(f"connection unusable: {detail}", **context)
        return PostgresStoreError(f"driver error: {detail}", **context)
    if isinstance(exc, (asyncpg.InternalClientError, OSError)):
        if write:
            return PostgresUnknownOutcomeError(
                f"connection failed after the write was sent; it may or may not have been "
                f"applied: {detail}",
                **context,
            )
        return PostgresUnavailableError(f"cannot reach the server: {detail}", **context)
    return PostgresStoreError(f"unexpected error: {detail}", **context)


def _server_error(
    exc: Any, detail: str, context: dict[str, Any], write: bool
) -> PostgresStoreError:
    state: str = exc.sqlstate or ""
    fields = {
        "sqlstate": exc.sqlstate,
        "constraint_name": getattr(exc, "constraint_name", None),
        "table_name": getattr(exc, "table_name", None),
        **context,
    }
    if state in _CONFLICT_STATES:
        return SerializationConflictError(
            f"conflict with a concurrent transaction; nothing was applied: {detail}", **fields
        )
    if state in _CANCELLED_STATES:
        return PostgresTimeoutError(
            f"the server cancelled the statement; nothing was applied: {detail}", **fields
        )
    if state in _REFUSED_STATES:
        return PostgresUnavailableError(f"the server refused the call: {detail}", **fields)
    if state.startswith("08") or state in _GONE_STATES:
        if write:
            return PostgresUnknownOutcomeError(
                f"connection lost after the write was sent; it may or may not have been "
                f"applied: {detail}",
                **fields,
            )
        return PostgresUnavailableError(f"connection lost: {detail}", **fields)
    return PostgresStoreError(f"server error: {detail}", **fields)


def connection_suspect(exc: BaseException | None) -> bool:
    """Whether a connection that raised ``exc`` may be mid-statement, cancelling, or dead.

    Such a connection is closed rather than reused or rolled back: waiting on it could
    outlast the caller's timeout, and the server rolls back what it had open anyway.
    """
    if exc is None:
        return False
    if isinstance(exc, PolystoreError):
        # A timed-out statement may still be running: releasing the connection would wait
        # for the server to cancel it, which a frozen server never does.
        return isinstance(
            exc, (PostgresUnavailableError, PostgresUnknownOutcomeError, StoreTimeoutError)
        )
    if isinstance(exc, asyncpg.PostgresError):
        state: str = exc.sqlstate or ""
        return state.startswith("08") or state in _GONE_STATES
    return isinstance(exc, (*DRIVER_ERRORS, asyncio.CancelledError))


class PostgresErrors(ErrorMap):
    """Translates asyncpg and socket exceptions raised in its block into polystore errors.

    ``with PostgresErrors(store.name, "save", key, write=True, secrets=...):`` around
    driver calls, or ``PostgresErrors(...).translate(exc)`` where a ``with`` block does not
    fit; see :class:`polystore.spi.ErrorMap` for the arguments.
    """

    __slots__ = ()

    driver_errors = DRIVER_ERRORS

    def translate(self, exc: BaseException) -> PolystoreError:
        return _translate(
            exc,
            backend=self.backend,
            operation=self.operation,
            key=self.key,
            write=self.write,
            secrets=self.secrets,
        )
