"""The polystore error tree.

Every failure polystore reports is a :class:`PolystoreError`. Driver exceptions are
translated in exactly one place per backend and chained with ``raise ... from exc``::

    PolystoreError(message, *, backend=None, operation=None, key=None)
    ├── ConfigurationError (ValueError)
    │   ├── BackendNotFoundError (LookupError)
    │   └── RouteRequirementError
    ├── PluginError
    └── StoreError
        ├── StoreUnavailableError        transient: refused/reset, server restarting
        │   ├── StoreTimeoutError (TimeoutError)
        │   ├── CircuitOpenError (polystore.breaker) refused by the backend's circuit breaker
        │   └── QuorumUnavailableError (QuorumError) too few replicas answered; nothing written
        ├── UnknownOutcomeError          a write may or may not have been applied
        │   └── QuorumUnknownOutcomeError (QuorumError) some replicas took the write, too few
        ├── ConflictError                CAS version mismatch
        │   ├── AlreadyExistsError       create-only write found the key
        │   └── IdempotencyConflictError same idempotency key, another payload
        ├── ValidationError (ValueError) bad key / value / ttl, rejected before any I/O
        ├── SerializationError           a value JSON cannot hold (UUID, Enum, datetime, …)
        └── UnsupportedOperationError    capability missing
            └── CrossShardError          (sharding) a transaction touches two shards

Messages name the backend, operation and key; they never contain a password or token.

:class:`ConfigurationWarning` (a ``UserWarning``) reports configuration that is ignored
rather than wrong: an unknown ``POLYSTORE_*`` environment variable, a name in
``POLYSTORE_DISABLE_PLUGINS`` that no installed plugin has.
"""

from __future__ import annotations

__all__ = [
    "AlreadyExistsError",
    "BackendNotFoundError",
    "ConfigurationError",
    "ConfigurationWarning",
    "ConflictError",
    "CrossShardError",
    "IdempotencyConflictError",
    "PluginError",
    "PolystoreError",
    "QuorumError",
    "QuorumUnavailableError",
    "QuorumUnknownOutcomeError",
    "RouteRequirementError",
    "SerializationError",
    "StoreError",
    "StoreTimeoutError",
    "StoreUnavailableError",
    "UnknownOutcomeError",
    "UnsupportedOperationError",
    "ValidationError",
]

_KEY_PREVIEW = 80


class PolystoreError(Exception):
    """Root of every error raised by polystore.

    Args:
        message: What went wrong, for a person.
        backend: Name of the backend or store involved, if any.
        operation: The operation that failed (``"get"``, ``"save"``, ...), if any.
        key: The key involved, if any (shortened in the message when long).
    """

    def __init__(
        self,
        message: str,
        *,
        backend: str | None = None,
        operation: str | None = None,
        key: str | None = None,
    ) -> None:
        self.message = message
        self.backend = backend
        self.operation = operation
        self.key = key
        super().__init__(self._render())

    def _render(self) -> str:
        context = []
        if self.backend is not None:
            context.append(f"backend={self.backend!r}")
        if self.operation is not None:
            context.append(f"operation={self.operation!r}")
        if self.key is not None:
            shown = self.key if len(self.key) <= _KEY_PREVIEW else self.key[:_KEY_PREVIEW] + "…"
            context.append(f"key={shown!r}")
        if not context:
            return self.message
        return f"{self.message} [{', '.join(context)}]"

    def __reduce__(self) -> tuple[object, ...]:
        # Rebuilt without calling __init__, then every attribute restored: subclasses
        # with fields of their own (route, sqlstate, ...) pickle with no code of theirs.
        return (_rebuild, (type(self), str(self)), self.__dict__)


def _rebuild(cls: type[PolystoreError], rendered: str) -> PolystoreError:
    error = cls.__new__(cls)
    Exception.__init__(error, rendered)
    return error


class ConfigurationError(PolystoreError, ValueError):
    """Settings are invalid or inconsistent."""


class BackendNotFoundError(ConfigurationError, LookupError):
    """No installed plugin provides the requested backend."""


class RouteRequirementError(ConfigurationError):
    """A route's store lacks a capability the route requires.

    Attributes:
        route: The route name.
        missing: The capability names the store does not provide.
    """

    def __init__(
        self,
        message: str,
        *,
        route: str,
        missing: tuple[str, ...],
        backend: str | None = None,
    ) -> None:
        self.route = route
        self.missing = missing
        super().__init__(message, backend=backend)


class PluginError(PolystoreError):
    """A plugin failed to load, clashed with another, or implements an unknown hook."""


class StoreError(PolystoreError):
    """An operation on a store failed."""


class StoreUnavailableError(StoreError):
    """The store cannot be reached right now (refused, reset, restarting). Transient."""


class StoreTimeoutError(StoreUnavailableError, TimeoutError):
    """The store did not answer within the configured timeout."""


class UnknownOutcomeError(StoreError):
    """A write was sent but its outcome is unknown: it may or may not have been applied."""


class QuorumError(StoreError):
    """Too few replicas of a replicated store answered or acknowledged.

    A base of two concrete errors, so that both usual ``except`` clauses hold:
    :class:`QuorumUnavailableError` (a :class:`StoreUnavailableError`: a read that too few
    replicas answered, or a write that no replica took) and
    :class:`QuorumUnknownOutcomeError` (an :class:`UnknownOutcomeError`: a write that some
    replicas took, fewer than the quorum). ``except QuorumError`` catches both.

    Attributes:
        required: The quorum the call needed.
        acknowledged: How many replicas answered (reads) or took the write (writes).
        failed: The names of the replicas that failed or did not answer in time.
    """

    def __init__(
        self,
        message: str,
        *,
        required: int,
        acknowledged: int,
        failed: tuple[str, ...] = (),
        backend: str | None = None,
        operation: str | None = None,
        key: str | None = None,
    ) -> None:
        self.required = required
        self.acknowledged = acknowledged
        self.failed = failed
        super().__init__(message, backend=backend, operation=operation, key=key)


class QuorumUnavailableError(QuorumError, StoreUnavailableError):
    """Too few replicas answered a read, or no replica took a write: nothing was written."""


class QuorumUnknownOutcomeError(QuorumError, UnknownOutcomeError):
    """Some replicas took a write, fewer than the write quorum: it may surface later."""


class ConflictError(StoreError):
    """A compare-and-set found a different version than the one expected."""


class AlreadyExistsError(ConflictError):
    """A create-only write (``if_absent=True``) found the key already present."""


class IdempotencyConflictError(ConflictError):
    """An idempotency key was used again with a different payload.

    The first request stands; the new one is refused rather than silently answered with
    the first one's result. The message names the differing fields, never their values.

    Attributes:
        fields: The names of the fields whose values differ, sorted.
    """

    def __init__(
        self,
        message: str,
        *,
        fields: tuple[str, ...],
        backend: str | None = None,
        operation: str | None = None,
        key: str | None = None,
    ) -> None:
        self.fields = fields
        super().__init__(message, backend=backend, operation=operation, key=key)


class ValidationError(StoreError, ValueError):
    """Bad input (key, value, ttl, filter), rejected before any I/O."""


class SerializationError(StoreError):
    """A value could not be encoded or decoded by the codec."""


class UnsupportedOperationError(StoreError):
    """The store does not declare the capability the operation needs."""


class CrossShardError(UnsupportedOperationError):
    """A transaction on a sharded store touched keys of two shards; nothing was written."""


class ConfigurationWarning(UserWarning):
    """Configuration that is ignored, probably by mistake (a misspelled variable name)."""
