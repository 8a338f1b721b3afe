"""Key layout: where a namespace's keys live in Redis, and how a scan pattern is escaped.

A key ``k`` of namespace ``ns`` is stored as ``{prefix}:{ns}:{k}``. Colons in the
namespace are written as ``%3A`` (``%`` cannot occur in a namespace), so the namespace
part never contains ``:``: no two namespaces share a key, and no namespace's keys are a
prefix-match of another's. With hash tags the namespace is braced,
``{prefix}:{{ns}}:{k}``, so all its keys map to one Redis Cluster slot.

Keys are appended verbatim: they may hold any character, including ``* ? [ ] \\ : { }``,
and can never leave the namespace because the namespace part is a fixed prefix.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from redis.crc import key_slot

__all__ = ["KeyLayout", "escape_glob", "fixed_hash_tag", "group_by_slot"]

_GLOB_ESCAPES = {ord(c): "\\" + c for c in "*?[]\\"}


def escape_glob(text: str) -> str:
    """Escape every Redis glob metacharacter (``* ? [ ] \\``) so ``text`` matches itself."""
    return text.translate(_GLOB_ESCAPES)


def fixed_hash_tag(base: str) -> bool:
    """Whether every key starting with ``base`` hashes to the same cluster slot.

    Redis hashes the text between the first ``{`` and the next ``}`` when it is not
    empty, else the whole key. The slot is fixed by ``base`` only if that text lies
    inside ``base``.
    """
    start = base.find("{")
    if start < 0:
        return False
    end = base.find("}", start + 1)
    return end > start + 1


def group_by_slot(keys: Iterable[str]) -> dict[int, list[str]]:
    """Group full Redis keys by cluster slot, keeping their order within each group."""
    groups: defaultdict[int, list[str]] = defaultdict(list)
    for key in keys:
        groups[key_slot(key.encode("utf-8"))].append(key)
    return groups


class KeyLayout:
    """The Redis keys of one namespace.

    Args:
        prefix: The backend's key prefix.
        namespace: The namespace (already validated).
        hash_tag: Brace the namespace as a cluster hash tag.

    Attributes:
        base: What every Redis key of the namespace starts with.
        single_slot: Whether all of the namespace's keys share one cluster slot.
    """

    __slots__ = ("_pattern_base", "base", "single_slot")

    def __init__(self, prefix: str, namespace: str, *, hash_tag: bool) -> None:
        segment = namespace.replace(":", "%3A")
        if hash_tag:
            segment = "{" + segment + "}"
        self.base = f"{prefix}:{segment}:"
        self._pattern_base = escape_glob(self.base)
        self.single_slot = fixed_hash_tag(self.base)

    def __repr__(self) -> str:
        return f"KeyLayout({self.base!r})"

    def key(self, key: str) -> str:
        """The Redis key of ``key``."""
        return self.base + key

    def pattern(self, prefix: str = "") -> str:
        """The ``SCAN MATCH`` pattern of the namespace's keys that start with ``prefix``."""
        return self._pattern_base + escape_glob(prefix) + "*"

    def strip(self, raw: bytes | str) -> str | None:
        """The store key of a Redis key from ``SCAN``, or None if it is not this namespace's."""
        if isinstance(raw, bytes):
            try:
                raw = raw.decode("utf-8")
            except UnicodeDecodeError:
                return None
        if not raw.startswith(self.base) or len(raw) == len(self.base):
            return None
        return raw[len(self.base) :]
