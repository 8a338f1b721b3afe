"""``scan`` and ``find`` over every shard: each key once, from the shard that answers for it.

A key is listed from its current owner. While a move is under way, a key found on its
previous owner is listed too unless the current owner holds it (the copy there is the
one reads return). Keys on a shard that neither owns nor owned them (left behind by an
interrupted change) are not listed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping

from polystore.errors import ValidationError
from polystore.protocol import DataStore
from polystore.sharding._batching import gather_all
from polystore.sharding.topology import ShardMap
from polystore.types import Entry, Scalar

__all__ = ["find_shards", "scan_shards"]


def _owns(shard_map: ShardMap, shard: str, key: str) -> bool | None:
    """True: ``shard`` owns ``key``; None: it held it before and may still; else False."""
    try:
        if shard_map.current.shard_for(key) == shard:
            return True
        if shard_map.previous is not None and shard_map.previous.shard_for(key) == shard:
            return None
    except ValidationError:  # outside every range: unreachable, not listed
        pass
    return False


async def _not_moved(
    stores: Mapping[str, DataStore], shard_map: ShardMap, keys: list[str]
) -> list[str]:
    """The keys (held by their previous owner) that their current owner lacks."""
    owner = shard_map.current.shard_for
    present = await gather_all(stores[owner(k)].exists(k) for k in keys)
    return [k for k, there in zip(keys, present, strict=True) if not there]


async def scan_shards(
    stores: Mapping[str, DataStore], shard_map: ShardMap, prefix: str, batch_size: int
) -> AsyncIterator[str]:
    """Stream every shard in turn (memory stays flat), each key once."""
    for shard in shard_map.shard_ids():
        waiting: list[str] = []
        async for key in stores[shard].scan(prefix=prefix, batch_size=batch_size):
            owned = _owns(shard_map, shard, key)
            if owned:
                yield key
            elif owned is None:
                waiting.append(key)
                if len(waiting) >= batch_size:
                    for found in await _not_moved(stores, shard_map, waiting):
                        yield found
                    waiting = []
        for found in await _not_moved(stores, shard_map, waiting):
            yield found


async def find_shards(
    stores: Mapping[str, DataStore],
    shard_map: ShardMap,
    where: Mapping[str, Scalar],
    limit: int | None,
) -> list[Entry]:
    """Ask every shard concurrently; merge by key; apply ``limit`` to the merged list."""
    ids = shard_map.shard_ids()
    per_shard = None if shard_map.migrating else limit
    answers = await gather_all(stores[i].find(where, limit=per_shard) for i in ids)
    found: dict[str, Entry] = {}
    waiting: list[Entry] = []
    for shard, entries in zip(ids, answers, strict=True):
        for entry in entries:
            owned = _owns(shard_map, shard, entry.key)
            if owned:
                found[entry.key] = entry
            elif owned is None:
                waiting.append(entry)
    if waiting:
        keep = set(await _not_moved(stores, shard_map, [e.key for e in waiting]))
        for entry in waiting:
            if entry.key in keep:
                found.setdefault(entry.key, entry)
    ordered = [found[key] for key in sorted(found)]
    return ordered if limit is None else ordered[:limit]
