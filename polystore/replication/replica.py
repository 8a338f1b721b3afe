"""Writing to one replica without ever overwriting a newer write.

Every write to a replica, whether a caller's write, a read repair or anti-entropy, is a
*merge*: read what the replica holds, join it with the incoming state under the
resolver, and store the join with the replica's compare-and-set (``if_version``, or
``if_absent`` when the key is missing). If another write got there in between, the
compare-and-set fails and the merge starts again from what is there now. So a replica
only ever moves forward, whatever order writes, repairs and stragglers arrive in, and
the replicas of a key converge on the join of every write they received.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from polystore.errors import ConflictError, StoreUnavailableError
from polystore.protocol import DataStore
from polystore.replication.envelope import State, decode, encode
from polystore.replication.quorum import gather_all
from polystore.replication.resolvers import Resolver
from polystore.replication.versions import VersionCache
from polystore.types import Entry

__all__ = ["MAX_MERGE_ATTEMPTS", "Merged", "merge_into", "merge_many", "state_of", "ttl_of"]

BATCH_CONCURRENCY = 32
"""Merges of one batch in flight at once on one replica."""

MAX_MERGE_ATTEMPTS = 64
"""Compare-and-set attempts of one merge before the replica counts as failed (every
failed attempt means another write to the key succeeded)."""


@dataclass(frozen=True, slots=True)
class Merged:
    """The result of a merge into one replica.

    Attributes:
        previous: What the replica held before.
        written: Whether anything was written (False: it already held the join).
    """

    previous: State
    written: bool


def state_of(entry: Entry | None, where: str, key: str) -> State:
    """What a replica's entry holds (empty when the key is absent)."""
    if entry is None:
        return ()
    if entry.value is None:  # a null stored without an envelope
        return decode({"~polystore": 1, "s": [{"t": 0, "n": "", "v": None}]})
    return decode(entry.value, where=where, key=key)


def ttl_of(state: State, now_ms: int) -> float | None:
    """Seconds the replica should keep ``state``: ``None`` for no expiry; ``<= 0`` when
    every value in it has expired already."""
    if not state or any(s.expires_ms is None for s in state):
        return None
    latest = max(s.expires_ms for s in state if s.expires_ms is not None)
    return (latest - now_ms) / 1000


async def merge_into(
    replica: DataStore,
    where: str,
    key: str,
    incoming: State,
    resolver: Resolver,
    now_ms: Callable[[], int],
    *,
    known: Entry | bool | None = False,
    cache: VersionCache | None = None,
) -> Merged:
    """Merge ``incoming`` into what ``replica`` holds under ``key``.

    Args:
        replica: The replica's store.
        where: The replica's name, for errors.
        key: The key.
        incoming: The state to merge in.
        resolver: How states join.
        now_ms: Wall clock in epoch ms (to skip writing what has expired).
        known: The entry the replica was just read to hold, to save one read
            (``False``: not known, read it first).
        cache: The versions this store saw, to write at once when the incoming state
            supersedes what the replica held last time (:mod:`.versions`).

    Raises:
        StoreUnavailableError: The replica cannot be reached (or stayed contended).
        UnknownOutcomeError: The replica's write may or may not have been applied.
    """
    if known is False and cache is not None:
        fast = await _merge_on_cached_version(
            replica, where, key, incoming, resolver, now_ms, cache
        )
        if fast is not None:
            return fast
    entry = await replica.get_entry(key) if known is False else known
    assert not isinstance(entry, bool)
    first_previous: State | None = None
    for _ in range(MAX_MERGE_ATTEMPTS):
        current = state_of(entry, where, key)
        if cache is not None and entry is not None:
            cache.put(where, key, entry.version, current)
        if first_previous is None:
            first_previous = current
        joined = resolver.join((current, incoming))
        if joined == current:
            return Merged(first_previous, False)
        ttl = ttl_of(joined, now_ms())
        if ttl is not None and ttl <= 0:
            return Merged(first_previous, False)  # expired: nothing to keep
        try:
            if entry is None:
                version = await replica.save(key, encode(joined), ttl=ttl, if_absent=True)
            else:
                version = await replica.save(key, encode(joined), ttl=ttl, if_version=entry.version)
        except ConflictError:
            entry = await replica.get_entry(key)
            continue
        except BaseException:
            if cache is not None:
                cache.forget(where, key)
            raise
        if cache is not None:
            cache.put(where, key, version, joined)
        return Merged(first_previous, True)
    raise StoreUnavailableError(
        f"replica kept changing under {MAX_MERGE_ATTEMPTS} merges", backend=where, key=key
    )


async def _merge_on_cached_version(
    replica: DataStore,
    where: str,
    key: str,
    incoming: State,
    resolver: Resolver,
    now_ms: Callable[[], int],
    cache: VersionCache,
) -> Merged | None:
    """Write ``incoming`` with one compare-and-set on the version last seen, if it
    supersedes everything seen there; ``None`` when the merge must read first."""
    hit = cache.get(where, key)
    if hit is None:
        return None
    version, seen = hit
    if resolver.join((seen, incoming)) != incoming:
        return None  # the replica holds something the incoming state does not cover
    ttl = ttl_of(incoming, now_ms())
    if ttl is not None and ttl <= 0:
        return None
    try:
        new_version = await replica.save(key, encode(incoming), ttl=ttl, if_version=version)
    except ConflictError:
        cache.forget(where, key)  # changed since: read it
        return None
    except BaseException:
        cache.forget(where, key)
        raise
    cache.put(where, key, new_version, incoming)
    return Merged(seen, True)


async def merge_many(
    replica: DataStore,
    where: str,
    states: Mapping[str, State],
    resolver: Resolver,
    now_ms: Callable[[], int],
    cache: VersionCache | None = None,
) -> dict[str, Merged]:
    """Merge a batch into one replica, :data:`BATCH_CONCURRENCY` keys at a time; the
    first failure cancels the merges in flight and is raised."""
    results: dict[str, Merged] = {}
    pending = list(states.items())
    for start in range(0, len(pending), BATCH_CONCURRENCY):
        chunk = pending[start : start + BATCH_CONCURRENCY]
        merged = await gather_all(
            merge_into(replica, where, key, state, resolver, now_ms, cache=cache)
            for key, state in chunk
        )
        results.update(zip((key for key, _ in chunk), merged, strict=True))
    return results
