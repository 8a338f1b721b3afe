"""The interface for plugin authors: everything a backend or a store wrapper imports.

Applications use :mod:`polystore`; a plugin (a backend, a codec, a store wrapper) imports
from here and from :mod:`polystore` only. Everything else in the package is internal and
may move between releases.

- Building a backend: :class:`BaseBackend`, :class:`BaseStore`, :class:`BaseTransaction`,
  :class:`BackendSettings`, :func:`new_version` / :func:`new_versions`,
  :data:`DEFAULT_MAX_VALUE_BYTES`, :func:`validate_namespace`.
- Registering it: :data:`hookimpl`, :class:`BackendRegistry`, :class:`BackendSpec`.
- Driver errors: subclass :class:`ErrorMap` once and implement
  ``translate(exc) -> PolystoreError``.
- Checking input before any I/O: :func:`validate_key`, :func:`validate_keys`,
  :func:`validate_ttl`, :func:`validate_where`, :func:`matches_where`, ...
- Never showing a secret: :func:`redact_url`, :func:`redact_text`, :func:`url_secrets`,
  :func:`userinfo_problem`, :func:`redact_options`.
- Staying within a call's timeout: :func:`remaining`, :func:`step_deadline`,
  :class:`DeadlineWatch`, :func:`budget`.
- Wrapping stores (``polystore_wrap_store``): :class:`StoreWrapper`.
- Vector-clock merge functions by name (``polystore_register_merge_functions``):
  :class:`MergeRegistry`, :data:`MergeFunction`.
- Coalescing concurrent single-key calls into batches: :class:`WriteOp`,
  :class:`WriteResult`, :data:`ReadResult`, :class:`CoalesceStats`.
"""

from polystore.backend import BaseBackend, validate_namespace
from polystore.backend_settings import BackendSettings
from polystore.base import (
    DEFAULT_MAX_VALUE_BYTES,
    BaseStore,
    BaseTransaction,
    new_version,
    new_versions,
)
from polystore.coalesce import CoalesceStats, ReadResult, WriteOp, WriteResult
from polystore.codecs import Codec, JsonCodec
from polystore.deadlines import (
    DeadlineWatch,
    budget,
    current_deadline,
    remaining,
    step_deadline,
)
from polystore.errormap import ErrorMap
from polystore.hookspecs import PROJECT_NAME, hookimpl
from polystore.protocol import Backend, DataStore, DataStoreTransaction
from polystore.redact import (
    REDACTED,
    redact_options,
    redact_text,
    redact_url,
    url_secrets,
    userinfo_problem,
)
from polystore.registry import BackendRegistry, BackendSpec
from polystore.replication.merges import MergeFunction, MergeRegistry
from polystore.retry import RetryPolicy, RetrySettings
from polystore.types import TTL, Capabilities, Entry, Health, JSONInput, JSONValue, Scalar, Version
from polystore.validation import (
    MAX_KEY_BYTES,
    MAX_TTL_SECONDS,
    matches_where,
    scalar_equal,
    validate_batch_size,
    validate_key,
    validate_keys,
    validate_limit,
    validate_prefix,
    validate_ttl,
    validate_where,
)
from polystore.wrapper import StoreWrapper

__all__ = [
    "DEFAULT_MAX_VALUE_BYTES",
    "MAX_KEY_BYTES",
    "MAX_TTL_SECONDS",
    "PROJECT_NAME",
    "REDACTED",
    "TTL",
    "Backend",
    "BackendRegistry",
    "BackendSettings",
    "BackendSpec",
    "BaseBackend",
    "BaseStore",
    "BaseTransaction",
    "Capabilities",
    "CoalesceStats",
    "Codec",
    "DataStore",
    "DataStoreTransaction",
    "DeadlineWatch",
    "Entry",
    "ErrorMap",
    "Health",
    "JSONInput",
    "JSONValue",
    "JsonCodec",
    "MergeFunction",
    "MergeRegistry",
    "ReadResult",
    "RetryPolicy",
    "RetrySettings",
    "Scalar",
    "StoreWrapper",
    "Version",
    "WriteOp",
    "WriteResult",
    "budget",
    "current_deadline",
    "hookimpl",
    "matches_where",
    "new_version",
    "new_versions",
    "redact_options",
    "redact_text",
    "redact_url",
    "remaining",
    "scalar_equal",
    "step_deadline",
    "url_secrets",
    "userinfo_problem",
    "validate_batch_size",
    "validate_key",
    "validate_keys",
    "validate_limit",
    "validate_namespace",
    "validate_prefix",
    "validate_ttl",
    "validate_where",
]
