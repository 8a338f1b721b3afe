"""Translation of PyMongo and BSON exceptions into polystore errors (the one place).

=================================================  ======================================
driver exception                                   polystore error
=================================================  ======================================
``ServerSelectionTimeoutError``, pool wait timeout  ``StoreTimeoutError`` (nothing was sent)
``NotPrimaryError``                                ``StoreUnavailableError`` (not applied)
``AutoReconnect``/``NetworkTimeout`` on a read     ``StoreUnavailableError``/``StoreTimeoutError``
the same on a write                                ``UnknownOutcomeError`` (unless PyMongo
                                                   labels it ``NoWritesPerformed``)
``ExecutionTimeout``                               ``StoreTimeoutError``; on a write
                                                   ``UnknownOutcomeError``
``WriteConcernError``                              ``UnknownOutcomeError`` (applied, not
                                                   confirmed at the write concern)
``CursorNotFound``                                 ``StoreUnavailableError``
``DuplicateKeyError`` (11000)                      ``AlreadyExistsError``
write conflict in a transaction                    ``ConflictError``
``DocumentTooLarge``, too deep, too large (server) ``ValidationError``
int beyond 64 bits                                 ``SerializationError``
authentication / authorization failure             ``StoreError``
client closed (``InvalidOperation``)               ``StoreUnavailableError``
bad URI or client option                           ``ConfigurationError``
=================================================  ======================================

Messages are redacted and never contain a password; the driver exception stays
reachable as ``__cause__`` (with its ``code`` and ``details``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bson.errors import InvalidDocument
from pymongo import errors as pm

from polystore import (
    AlreadyExistsError,
    ConfigurationError,
    ConflictError,
    PolystoreError,
    SerializationError,
    StoreError,
    StoreTimeoutError,
    StoreUnavailableError,
    UnknownOutcomeError,
    ValidationError,
)
from polystore.spi import ErrorMap, redact_text

__all__ = ["DRIVER_ERRORS", "MongoErrors"]

DRIVER_ERRORS = (pm.PyMongoError, InvalidDocument, OverflowError)
"""Exception types :class:`MongoErrors` translates."""

_AUTH_CODES = frozenset({18, 13})  # AuthenticationFailed, Unauthorized
_TOO_LARGE_CODES = frozenset({10334, 17419, 17420, 10329})  # BSONObjectTooLarge & co.
_TOO_DEEP_CODES = frozenset({15})  # Overflow: document nesting too deep
_TRANSACTION_CONFLICT_CODES = frozenset({112, 251})  # WriteConflict, NoSuchTransaction
_TIMEOUT_CODES = frozenset({50, 202, 262})  # MaxTimeMSExpired, NetworkInterface…, ExceededTimeLimit
_MAX_MESSAGE = 400


class MongoErrors(ErrorMap):
    """Translates PyMongo and BSON exceptions raised in its block into polystore errors.

    ``with MongoErrors(store.name, "save", key, write=True):`` around driver calls; see
    :class:`polystore.spi.ErrorMap` for the arguments.
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


def _message(exc: BaseException, secrets: Sequence[str] = ()) -> str:
    if isinstance(exc, pm.OperationFailure) and isinstance(exc.details, dict):
        text = str(exc.details.get("errmsg") or exc)
    else:
        text = str(exc).partition(", full error:")[0]
    text = redact_text(text, secrets)
    return text if len(text) <= _MAX_MESSAGE else text[:_MAX_MESSAGE] + "…"


def _is_timeout(exc: BaseException) -> bool:
    return bool(getattr(exc, "timeout", False))


def _translate(
    exc: BaseException,
    *,
    backend: str,
    operation: str,
    key: str | None,
    write: bool,
    secrets: Sequence[str],
) -> PolystoreError:
    """The polystore error for a driver exception (see the module docstring)."""
    where: dict[str, Any] = {"backend": backend, "operation": operation, "key": key}
    text = _message(exc, secrets)
    if isinstance(exc, pm.DuplicateKeyError):
        return AlreadyExistsError("key already exists", **where)
    if isinstance(exc, pm.BulkWriteError):
        return _bulk_error(exc, where)
    if isinstance(exc, InvalidDocument):  # DocumentTooLarge is one
        return ValidationError(f"value cannot be stored as a MongoDB document: {text}", **where)
    if isinstance(exc, OverflowError):
        return SerializationError(
            "integer outside the signed 64-bit range that BSON can hold", **where
        )
    if isinstance(exc, pm.ConnectionFailure):
        return _connection_error(exc, text, where, write=write)
    if isinstance(exc, pm.ExecutionTimeout):
        if write:
            return UnknownOutcomeError(f"write timed out on the server: {text}", **where)
        return StoreTimeoutError(f"timed out: {text}", **where)
    if isinstance(exc, pm.CursorNotFound):  # e.g. the server restarted between batches
        return StoreUnavailableError(f"server cursor lost: {text}", **where)
    if isinstance(exc, pm.WriteConcernError):
        return UnknownOutcomeError(
            f"write not confirmed at the requested write concern: {text}", **where
        )
    if isinstance(exc, pm.OperationFailure):
        return _operation_error(exc, text, where)
    if isinstance(exc, pm.InvalidOperation):
        return StoreUnavailableError(f"client unusable: {text}", **where)
    if isinstance(exc, pm.ConfigurationError):
        return ConfigurationError(
            f"invalid MongoDB configuration: {text}", backend=backend, operation=operation
        )
    return StoreError(f"mongodb error: {text}", **where)


def _connection_error(
    exc: pm.ConnectionFailure, text: str, where: dict[str, Any], *, write: bool
) -> StoreError:
    not_sent = isinstance(exc, (pm.ServerSelectionTimeoutError, pm.WaitQueueTimeoutError))
    refused = isinstance(exc, pm.NotPrimaryError) or exc.has_error_label("NoWritesPerformed")
    if write and not (not_sent or refused):
        return UnknownOutcomeError(
            f"connection lost after the write was sent; it may or may not have been "
            f"applied: {text}",
            **where,
        )
    if _is_timeout(exc):
        return StoreTimeoutError(f"timed out: {text}", **where)
    return StoreUnavailableError(f"server unavailable: {text}", **where)


def _operation_error(exc: pm.OperationFailure, text: str, where: dict[str, Any]) -> StoreError:
    code = exc.code
    if code in _AUTH_CODES:
        return StoreError(f"authentication or authorization failed: {text}", **where)
    if exc.has_error_label("UnknownTransactionCommitResult"):
        return UnknownOutcomeError(f"transaction commit outcome unknown: {text}", **where)
    if code in _TRANSACTION_CONFLICT_CODES or exc.has_error_label("TransientTransactionError"):
        return ConflictError(
            f"transaction aborted by a conflicting write; run it again: {text}", **where
        )
    if code in _TOO_LARGE_CODES:
        return ValidationError(f"value too large for one MongoDB document: {text}", **where)
    if code in _TOO_DEEP_CODES:
        return ValidationError(f"value nested too deeply for MongoDB: {text}", **where)
    if code in _TIMEOUT_CODES or _is_timeout(exc):
        return StoreTimeoutError(f"timed out: {text}", **where)
    return StoreError(f"mongodb error {code}: {text}", **where)


def _bulk_error(exc: pm.BulkWriteError, where: dict[str, Any]) -> StoreError:
    details = exc.details if isinstance(exc.details, dict) else {}
    errors: list[dict[str, Any]] = details.get("writeErrors") or []
    if details.get("writeConcernErrors"):
        return UnknownOutcomeError("batch not confirmed at the requested write concern", **where)
    if not errors:
        return StoreError(f"batch failed: {_message(exc)}", **where)
    first = errors[0]
    query = (first.get("op") or {}).get("q") or {}
    key = query.get("_id") if isinstance(query.get("_id"), str) else where["key"]
    failed = f"{len(errors)} item(s) of the batch failed and the others were written"
    first_text = redact_text(str(first.get("errmsg", "")))[:_MAX_MESSAGE]
    context = {**where, "key": key}
    if first.get("code") in _TOO_LARGE_CODES:
        return ValidationError(f"value too large for one MongoDB document; {failed}", **context)
    return StoreError(f"{failed}; first error {first.get('code')}: {first_text}", **context)
