"""Read contexts of the vector-clock resolver: what a write supersedes.

A write under :class:`~polystore.replication.VectorClock` carries a *context*, the
vector clock of what its writer had seen of the key; it supersedes every sibling that
context covers and is kept beside the ones it does not. The context comes from:

- the explicit form: ``save(key, value, context=entry.version)``, where ``entry`` came
  from ``get_entry`` (the version token of a vector-clock store *is* its context);
- otherwise the implicit form: the last read or write of that key by the same
  :class:`~polystore.replication.ReplicatedStore`, remembered for at most
  ``context_size`` keys (least recently used dropped first: about 100 bytes per key and
  writer, so 10 000 keys take about a megabyte). A key whose context was dropped, or
  never read, is written blind: kept beside what is there and merged on the next read.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping

from polystore.errors import ConfigurationError, ValidationError
from polystore.replication.envelope import parse_context

__all__ = ["ContextCache"]


class ContextCache:
    """The implicit contexts of one store, bounded to ``size`` keys (0: none kept)."""

    def __init__(self, size: int) -> None:
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise ConfigurationError("context_size must be an int >= 0")
        self.size = size
        self._clocks: OrderedDict[str, dict[str, int]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._clocks)

    def remember(self, key: str, clock: Mapping[str, int]) -> None:
        """Keep ``clock`` as the context of ``key``."""
        if not self.size:
            return
        self._clocks[key] = dict(clock)
        self._clocks.move_to_end(key)
        while len(self._clocks) > self.size:
            self._clocks.popitem(last=False)

    def for_write(self, key: str, token: object, store: str) -> dict[str, int]:
        """The context of a write of ``key``: ``token`` if given, else the implicit one.

        Raises:
            ValidationError: ``token`` is not a version of a vector-clock store.
        """
        if token is None:
            return dict(self._clocks.get(key, {}))
        if not isinstance(token, str):
            raise ValidationError("context must be a version token (str)", backend=store, key=key)
        try:
            return parse_context(token)
        except ValueError:
            raise ValidationError(
                "context is not a version from a vector-clock replicated store",
                backend=store,
                key=key,
            ) from None
