"""The settings every backend shares: :class:`BackendSettings`."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from polystore.base import DEFAULT_MAX_VALUE_BYTES
from polystore.retry import RetrySettings

__all__ = ["BackendSettings"]


class BackendSettings(BaseModel):
    """Base of a backend's settings model: strict, and the fields every backend has.

    A plugin's model subclasses it and adds its own fields (``url``, pool sizes, ...);
    unknown keys are refused and input values never appear in validation errors (they
    may hold passwords).

    Attributes:
        max_value_bytes: The largest encoded value a save accepts.
        retry: How idempotent calls are retried when the backend cannot be reached.
        coalesce: Send concurrent single-key calls as batches (see
            :mod:`polystore.coalesce`), where the backend implements them.
        coalesce_max_batch: Calls that make a batch go out at once.
    """

    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    max_value_bytes: int = Field(default=DEFAULT_MAX_VALUE_BYTES, gt=0)
    retry: RetrySettings = Field(default_factory=RetrySettings)
    coalesce: bool = False
    coalesce_max_batch: int = Field(default=128, ge=1, le=10_000)
