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
    """

    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    max_value_bytes: int = Field(default=DEFAULT_MAX_VALUE_BYTES, gt=0)
    retry: RetrySettings = Field(default_factory=RetrySettings)
