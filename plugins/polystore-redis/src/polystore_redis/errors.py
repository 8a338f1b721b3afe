"""Translation of redis-py exceptions into polystore errors: the one place it happens.

========================================  ===========================================
redis-py                                  polystore
========================================  ===========================================
refused, reset, closed, pool exhausted    :class:`~polystore.StoreUnavailableError`
LOADING, BUSY, READONLY, OOM, MISCONF,    :class:`~polystore.StoreUnavailableError`
CLUSTERDOWN, TRYAGAIN, MASTERDOWN         (the server refused: nothing was applied)
timeout                                   :class:`~polystore.StoreTimeoutError`
a write's reply lost after it was sent    :class:`~polystore.UnknownOutcomeError`
``WatchError`` (a watched key changed)    :class:`~polystore.ConflictError`
anything else                             :class:`~polystore.StoreError`
========================================  ===========================================

Every translated error is chained to the driver's (``raise ... from exc``) and its
message is passed through :func:`~polystore.redact.redact_text`: redis-py names only
``host:port`` in its messages, and nothing here adds a URL or a password.
"""

from __future__ import annotations

from redis import exceptions as rx

from polystore import (
    ConflictError,
    PolystoreError,
    StoreError,
    StoreTimeoutError,
    StoreUnavailableError,
    UnknownOutcomeError,
    ValidationError,
)
from polystore.spi import ErrorMap, redact_text

__all__ = ["RedisErrors"]

# Messages redis-py gives to failures that happen before a command is written.
_NOT_SENT = (
    "connecting to",
    "Timeout connecting",
    "No connection available",
    "Too many connections",
    "Connection not ready",
    "Connection has data",
)
_REFUSED_BEFORE_RUNNING = (
    "LOADING",
    "BUSY",
    "READONLY",
    "OOM",
    "MISCONF",
    "CLUSTERDOWN",
    "TRYAGAIN",
    "MASTERDOWN",
    "NOREPLICAS",
)
# Errors raised before a command is written (some are missing from older redis-py).
_NEVER_SENT: tuple[type[BaseException], ...] = tuple(
    cls
    for cls in (
        rx.AuthenticationError,
        rx.BusyLoadingError,
        getattr(rx, "AuthorizationError", None),
        getattr(rx, "MaxConnectionsError", None),
    )
    if isinstance(cls, type)
)


def _sent(exc: BaseException) -> bool:
    """Whether the command may have reached the server before ``exc`` happened."""
    if isinstance(exc, _NEVER_SENT):
        return False
    text = str(exc)
    return not any(marker in text for marker in _NOT_SENT)


def _translate(exc: BaseException, errors: RedisErrors) -> StoreError:
    """The polystore error for a redis-py (or socket) exception; a write whose reply was
    lost after it was sent has an unknown outcome."""
    detail = redact_text(str(exc), errors.secrets) or type(exc).__name__
    where = {"backend": errors.backend, "operation": errors.operation, "key": errors.key}
    write = errors.write
    if isinstance(exc, rx.WatchError):
        return ConflictError(f"a watched key changed before commit: {detail}", **where)
    if isinstance(exc, rx.AuthenticationError):
        return StoreUnavailableError(f"redis authentication failed: {detail}", **where)
    if isinstance(exc, (rx.ConnectionError, rx.TimeoutError, OSError)):
        if write and _sent(exc):
            return UnknownOutcomeError(
                f"the connection failed after the write was sent, so it may or may not "
                f"have been applied: {detail}",
                **where,
            )
        if isinstance(exc, (rx.TimeoutError, TimeoutError)):
            return StoreTimeoutError(f"redis did not answer in time: {detail}", **where)
        return StoreUnavailableError(f"redis is unreachable: {detail}", **where)
    if isinstance(exc, (rx.ClusterDownError, rx.SlotNotCoveredError, rx.ClusterError)):
        return StoreUnavailableError(f"redis cluster is unavailable: {detail}", **where)
    if isinstance(exc, rx.ResponseError) and detail.startswith(_REFUSED_BEFORE_RUNNING):
        return StoreUnavailableError(f"redis refused the command: {detail}", **where)
    if isinstance(exc, rx.DataError):
        return ValidationError(f"redis rejected the arguments: {detail}", **where)
    if isinstance(exc, rx.ResponseError) and detail.startswith("WRONGTYPE"):
        return StoreError(
            f"the key holds a Redis value that this store did not write: {detail}", **where
        )
    return StoreError(f"redis error: {detail}", **where)


class RedisErrors(ErrorMap):
    """Translates redis-py exceptions raised in its block into polystore errors.

    ``with RedisErrors(store.name, "save", key, write=True):`` around driver calls; see
    :class:`polystore.spi.ErrorMap` for the arguments.
    """

    __slots__ = ()

    driver_errors = (rx.RedisError, OSError)

    def translate(self, exc: BaseException) -> PolystoreError:
        return _translate(exc, self)
