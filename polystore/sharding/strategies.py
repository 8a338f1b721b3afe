"""Which shard owns a key: rendezvous hashing and key ranges.

Both strategies are pure and deterministic: the same key maps to the same shard in every
process (the hash is BLAKE2b of the key's UTF-8 bytes, never Python's randomised
``hash()``), so processes that share a shard map agree without talking to each other.

:class:`HashShardStrategy` uses rendezvous (highest-random-weight) hashing: each key scores
every shard and goes to the highest score. Shares are equal (or proportional to
``weights``), and adding one shard to N moves about ``1/(N+1)`` of the keys, all of them to
the new shard; removing one moves only that shard's keys. A key holding ``{tag}`` is hashed
on ``tag`` alone (as in Redis Cluster), so related keys can share a shard and a transaction.

:class:`RangeShardStrategy` assigns half-open key ranges ``[start, end)``.
"""

from __future__ import annotations

import bisect
import functools
import itertools
import math
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from hashlib import blake2b
from typing import Any

from polystore.errors import ConfigurationError, ValidationError

__all__ = [
    "HashShardStrategy",
    "RangeShardStrategy",
    "ShardStrategy",
    "strategy_from_spec",
]

_MASK = (1 << 64) - 1
_UNIT = 2.0**-53
CACHE_SIZE = 16_384
"""Keys whose shard each hash strategy remembers (least recently used ones forgotten)."""


class ShardStrategy(ABC):
    """Maps keys to shard ids. Subclasses are immutable values."""

    shard_ids: tuple[str, ...]

    @abstractmethod
    def shard_for(self, key: str) -> str:
        """The id of the shard that owns ``key``.

        Raises:
            ValidationError: No shard owns ``key`` (a range strategy's gap).
        """

    def get_shard_id(self, key: str) -> str:
        """The reference design's name for :meth:`shard_for`."""
        return self.shard_for(key)

    @abstractmethod
    def with_shards(self, shard_ids: Sequence[str]) -> ShardStrategy:
        """The same strategy over ``shard_ids`` (for adding or removing a shard).

        Raises:
            ConfigurationError: The strategy cannot be spread over these shards.
        """

    @abstractmethod
    def to_spec(self) -> dict[str, Any]:
        """A JSON description, read back by :func:`strategy_from_spec`."""

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ShardStrategy) and self.to_spec() == other.to_spec()

    def __hash__(self) -> int:
        return hash(repr(self.to_spec()))


def _key_hash(key: str) -> int:
    start = key.find("{")
    if start >= 0:
        end = key.find("}", start + 1)
        if end > start + 1:
            key = key[start + 1 : end]
    return int.from_bytes(
        blake2b(key.encode("utf-8", "surrogatepass"), digest_size=8).digest(), "big"
    )


def _mix(value: int) -> int:
    # splitmix64 finaliser: a cheap, well-spread 64-bit mix of key hash and shard seed.
    value = ((value ^ (value >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    value = ((value ^ (value >> 27)) * 0x94D049BB133111EB) & _MASK
    return value ^ (value >> 31)


def _seed(shard_id: str) -> int:
    return int.from_bytes(blake2b(shard_id.encode("utf-8"), digest_size=8).digest(), "big")


class HashShardStrategy(ShardStrategy):
    """Rendezvous (highest-random-weight) hashing over BLAKE2b.

    Args:
        shards: The shard ids, or a number ``n`` for ids ``"0"`` … ``"n-1"`` (the reference
            design's ``HashShardStrategy(num_shards)``). ``None`` leaves them to the
            :class:`~polystore.sharding.ShardedStore`, which uses its shards' ids.
        weights: Relative share of each shard (default 1 each); a shard of weight 2 gets
            twice the keys of a shard of weight 1.

    Raises:
        ConfigurationError: Duplicate ids, or a weight that is not a positive number.
    """

    def __init__(
        self,
        shards: Iterable[str] | int | None = None,
        *,
        weights: Mapping[str, float] | None = None,
    ) -> None:
        if isinstance(shards, int):
            if shards < 1:
                raise ConfigurationError(f"num_shards must be at least 1, got {shards}")
            shards = [str(i) for i in range(shards)]
        ids = tuple(shards) if shards is not None else ()
        if len(set(ids)) != len(ids):
            raise ConfigurationError(f"shard ids repeat: {list(ids)}")
        self.weights: dict[str, float] = dict(weights or {})
        for shard_id, weight in self.weights.items():
            if isinstance(weight, bool) or not isinstance(weight, (int, float)):
                raise ConfigurationError(f"weight of shard {shard_id!r} must be a number")
            if not math.isfinite(weight) or weight <= 0:
                raise ConfigurationError(f"weight of shard {shard_id!r} must be > 0")
        self.shard_ids = ids
        self._seeds = [(_seed(i), i) for i in ids]
        self._weighted = [(_seed(i), self.weights.get(i, 1.0), i) for i in ids]
        self._uniform = len({self.weights.get(i, 1.0) for i in ids}) <= 1
        self._only = ids[0] if len(ids) == 1 else None
        # Hot keys repeat: remembering recent answers spares the hashing (bounded memory).
        self._cached = functools.lru_cache(maxsize=CACHE_SIZE)(self._highest)

    def __repr__(self) -> str:
        weights = f", weights={self.weights!r}" if self.weights else ""
        return f"HashShardStrategy({list(self.shard_ids)!r}{weights})"

    def shard_for(self, key: str) -> str:
        """The shard with the highest score for ``key``."""
        if self._only is not None:
            return self._only
        if not self._seeds:
            raise ConfigurationError("HashShardStrategy has no shards")
        return self._cached(key)

    def _highest(self, key: str) -> str:
        hashed = _key_hash(key)
        if self._uniform:
            best_score = -1
            best = ""
            for seed, shard_id in self._seeds:
                score = _mix(hashed ^ seed)
                if score > best_score:
                    best_score, best = score, shard_id
            return best
        best_weighted = -math.inf
        best = ""
        for seed, weight, shard_id in self._weighted:
            unit = ((_mix(hashed ^ seed) >> 11) + 0.5) * _UNIT  # in (0, 1)
            weighted = -weight / math.log(unit)
            if weighted > best_weighted:
                best_weighted, best = weighted, shard_id
        return best

    def with_shards(self, shard_ids: Sequence[str]) -> HashShardStrategy:
        """The same weights over ``shard_ids`` (new shards weigh 1 unless weighted)."""
        weights = {i: w for i, w in self.weights.items() if i in shard_ids}
        return HashShardStrategy(shard_ids, weights=weights)

    def to_spec(self) -> dict[str, Any]:
        """``{"kind": "hash", "shards": [...], "weights": {...}}``."""
        return {"kind": "hash", "shards": list(self.shard_ids), "weights": dict(self.weights)}


class RangeShardStrategy(ShardStrategy):
    """Half-open key ranges ``[start, end)`` compared as strings.

    Args:
        ranges: ``(start, end, shard_id)`` triples; ``None`` is an open end. The reference
            design's ranges had inclusive ends; here ``end`` is excluded, so ``("a", "m",
            ...)`` holds ``"lzzz"`` but not ``"m"``.

    Raises:
        ConfigurationError: A range is empty, or two ranges overlap.
    """

    def __init__(self, ranges: Iterable[Sequence[str | None]]) -> None:
        parsed: list[tuple[str | None, str | None, str]] = []
        for item in ranges:
            if len(item) != 3 or not isinstance(item[2], str) or not item[2]:
                raise ConfigurationError(f"a range is (start, end, shard_id), got {item!r}")
            start, end, shard_id = item[0], item[1], item[2]
            for bound in (start, end):
                if bound is not None and not isinstance(bound, str):
                    raise ConfigurationError(f"range bounds are str or None, got {bound!r}")
            if start is not None and end is not None and start >= end:
                raise ConfigurationError(f"range [{start!r}, {end!r}) is empty")
            parsed.append((start, end, shard_id))
        if not parsed:
            raise ConfigurationError("RangeShardStrategy needs at least one range")
        parsed.sort(key=lambda r: (r[0] is not None, r[0] or ""))
        for (_, end, _), (start, _, _) in itertools.pairwise(parsed):
            if end is None or start is None or start < end:
                raise ConfigurationError(f"ranges overlap at {start!r}")
        self.ranges = tuple(parsed)
        self.shard_ids = tuple(dict.fromkeys(r[2] for r in parsed))
        self._open_start = parsed[0] if parsed[0][0] is None else None
        bounded = parsed[1:] if self._open_start is not None else parsed
        self._starts = [str(r[0]) for r in bounded]
        self._bounded = bounded

    def __repr__(self) -> str:
        return f"RangeShardStrategy({[list(r) for r in self.ranges]!r})"

    def shard_for(self, key: str) -> str:
        """The shard whose range holds ``key``.

        Raises:
            ValidationError: ``key`` falls outside every range.
        """
        index = bisect.bisect_right(self._starts, key) - 1
        candidate = self._bounded[index] if index >= 0 else self._open_start
        if candidate is not None and (candidate[1] is None or key < candidate[1]):
            return candidate[2]
        raise ValidationError("key falls outside every shard range", key=key)

    def with_shards(self, shard_ids: Sequence[str]) -> RangeShardStrategy:
        """This strategy, if every range's shard is among ``shard_ids``.

        Raises:
            ConfigurationError: A range names a shard not in ``shard_ids``: ranges are not
                reassigned implicitly; pass a new ``RangeShardStrategy``.
        """
        missing = [i for i in self.shard_ids if i not in shard_ids]
        if missing:
            raise ConfigurationError(
                f"ranges name shards {missing} that are not attached; give new ranges"
            )
        return self

    def to_spec(self) -> dict[str, Any]:
        """``{"kind": "range", "ranges": [[start, end, shard_id], ...]}``."""
        return {"kind": "range", "ranges": [list(r) for r in self.ranges]}


def strategy_from_spec(spec: Mapping[str, Any]) -> ShardStrategy:
    """Rebuild a strategy from :meth:`ShardStrategy.to_spec`.

    Raises:
        ConfigurationError: The description is not one of a known strategy.
    """
    kind = spec.get("kind")
    if kind == "hash":
        return HashShardStrategy(spec.get("shards", ()), weights=spec.get("weights") or None)
    if kind == "range":
        return RangeShardStrategy(spec.get("ranges", ()))
    raise ConfigurationError(f"unknown shard strategy {kind!r}; use 'hash' or 'range'")
