"""Moving keys to their owners: one key (:func:`move_key`) and every key (:class:`Rebalancer`).

A move never loses an acknowledged write and never brings a deleted key back for good:

1. read the entry on the old owner (value, version, expiry);
2. copy it to the new owner *create-only* (``if_absent``): if the new owner already holds
   the key, that is a newer write and it is kept;
3. delete it from the old owner *compare-and-set* (``if_version`` = the version read);
4. if that delete fails (the key changed or vanished on the old owner meanwhile), remove
   the copy again, compare-and-set on the copy's version (so a write made to the new owner
   since is kept), and start over with what the old owner holds now.

An expiring entry is copied with its remaining time, not its original ttl. Running the
mover again after a crash finds what is left and finishes it: a key copied but not yet
deleted is found on the new owner (step 2 keeps that copy) and deleted from the old one.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from polystore.errors import AlreadyExistsError, ConflictError, ValidationError
from polystore.protocol import DataStore
from polystore.sharding.strategies import ShardStrategy
from polystore.sharding.topology import ShardMap
from polystore.types import Version

__all__ = ["RebalanceReport", "Rebalancer", "move_key"]

_BATCH = 64
_MIN_TTL = 0.001


@dataclass
class RebalanceReport:
    """What a rebalance did (or, with ``dry_run``, would do).

    Attributes:
        scanned: Keys listed on every shard.
        moved: Keys moved to their owner (that would move, on a dry run).
        kept_newer: Misplaced copies dropped because the owner held a newer write.
        unplaced: Keys no range holds (left where they are).
        moves: ``"from->to"`` -> number of keys moved that way.
        elapsed: Seconds spent.
        dry_run: Whether nothing was changed.
        epoch: The shard map's epoch when the rebalance ended.
    """

    scanned: int = 0
    moved: int = 0
    kept_newer: int = 0
    unplaced: int = 0
    moves: dict[str, int] = field(default_factory=dict)
    elapsed: float = 0.0
    dry_run: bool = False
    epoch: int = 0

    @property
    def rate(self) -> float:
        """Keys scanned per second."""
        return self.scanned / self.elapsed if self.elapsed > 0 else 0.0


def _remaining(expires_at: datetime | None) -> float | None:
    if expires_at is None:
        return None
    return expires_at.timestamp() - time.time()


async def move_key(
    key: str, source: DataStore, target: DataStore
) -> tuple[Version, Version] | None:
    """Move ``key`` from ``source`` to ``target`` (see the module docstring).

    Returns:
        ``(version on source, version of the copy)`` when this call copied the value,
        ``None`` when there was nothing to copy (absent, expired, or ``target`` already
        held a newer write, in which case the stale source copy is removed).
    """
    while True:
        entry = await source.get_entry(key)
        if entry is None:
            return None
        ttl = _remaining(entry.expires_at)
        if ttl is not None and ttl <= 0:
            return None
        copied: Version | None = None
        with contextlib.suppress(AlreadyExistsError):
            copied = await target.save(
                key, entry.value, ttl=max(ttl, _MIN_TTL) if ttl else None, if_absent=True
            )
        try:
            deleted = await source.delete(key, if_version=entry.version)
        except ConflictError:
            deleted = False
        if deleted:
            return None if copied is None else (entry.version, copied)
        if copied is not None:
            # A conflict means a write reached the new owner since: that write stays.
            with contextlib.suppress(ConflictError):
                await target.delete(key, if_version=copied)


Progress = Callable[[RebalanceReport], None]


class Rebalancer:
    """Scans every shard and moves each key that is not on its owner under ``owner``.

    Args:
        stores: Shard id -> store.
        shard_map: The map whose shards are scanned.
        owner: The strategy keys are moved to.
    """

    def __init__(
        self, stores: Mapping[str, DataStore], shard_map: ShardMap, owner: ShardStrategy
    ) -> None:
        self.stores = stores
        # Shards that only gain keys first, shards that only lose keys last: a key moved
        # lands on a shard already scanned, so it is scanned (and counted) once.
        before = set(shard_map.previous.shard_ids if shard_map.previous else ())
        before |= set(shard_map.current.shard_ids) - set(owner.shard_ids)
        after = set(owner.shard_ids)
        every = dict.fromkeys([*owner.shard_ids, *shard_map.shard_ids()])
        self.shard_ids = tuple(
            sorted(every, key=lambda s: (s in before, s not in after))  # stable: map order
        )
        self.owner = owner
        self.report = RebalanceReport()

    async def run(self, progress: Progress | None = None, dry_run: bool = False) -> RebalanceReport:
        """Scan and move; return the report."""
        report = self.report
        report.dry_run = dry_run
        started = time.monotonic()
        for shard in self.shard_ids:
            batch: list[tuple[str, str]] = []
            async for key in self.stores[shard].scan(batch_size=500):
                report.scanned += 1
                try:
                    owner = self.owner.shard_for(key)
                except ValidationError:
                    report.unplaced += 1
                    continue
                if owner != shard:
                    batch.append((key, owner))
                if len(batch) >= _BATCH:
                    await self._move(shard, batch, dry_run)
                    batch = []
                    report.elapsed = time.monotonic() - started
                    if progress is not None:
                        progress(report)
            await self._move(shard, batch, dry_run)
            report.elapsed = time.monotonic() - started
            if progress is not None:
                progress(report)
        return report

    async def _move(self, shard: str, batch: list[tuple[str, str]], dry_run: bool) -> None:
        report = self.report
        if dry_run:
            for _, owner in batch:
                self._count(shard, owner)
            return
        source = self.stores[shard]
        results = await asyncio.gather(
            *(move_key(key, source, self.stores[owner]) for key, owner in batch),
            return_exceptions=True,
        )
        for (_, owner), result in zip(batch, results, strict=True):
            if isinstance(result, BaseException):
                raise result
            if result is None:
                report.kept_newer += 1
            else:
                self._count(shard, owner)

    def _count(self, shard: str, owner: str) -> None:
        route = f"{shard}->{owner}"
        self.report.moves[route] = self.report.moves.get(route, 0) + 1
        self.report.moved += 1
