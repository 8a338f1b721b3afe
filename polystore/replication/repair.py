"""Walking every key of every replica: ``scan`` and anti-entropy ``repair``.

Both stream one replica at a time in batches and read each batch from every replica
(one ``get_many`` per replica), so memory stays flat however many keys; neither keeps a
set of keys seen. Instead:

- ``scan`` yields a key from the *last* replica (in order) that holds it: a key found
  while a later replica also holds it is left for that replica's scan, which will list
  it (a replica holds a key until ``repair`` reaps it), so no key is missed. A copy
  landing on a later replica after an earlier one yielded the key would list it twice:
  so the scan first lets this store's own replica calls still running finish (up to
  :data:`SETTLE_SECONDS`). A key written during the scan, or copied by another
  process's late replica call, may be listed twice or not at all.
- ``repair`` handles a key at the *first* replica that holds it and copies it to every
  other one, then skips it on the later ones. A key copied to an earlier replica while
  the pass runs (a write, a straggler) may be left for the next pass.

:func:`run_repair` copies the winning state of each key to the replicas that lack it
(merges, never over a newer write), and reaps a tombstone once it is older than the
store's ``tombstone_grace`` and every replica holds it (a compare-and-set delete on each,
so a write that arrives in between survives). It needs every replica; what it repaired
before one failed stays repaired, and running it again resumes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from polystore.errors import ConflictError, QuorumUnavailableError, StoreUnavailableError
from polystore.replication.envelope import State
from polystore.replication.quorum import Outcome, fan_out, gather_all
from polystore.replication.replica import merge_into, state_of
from polystore.types import Entry, JSONValue, Version

if TYPE_CHECKING:
    from polystore.replication.store import ReplicatedStore

__all__ = ["SETTLE_SECONDS", "RepairReport", "run_repair", "scan_live"]

_CONCURRENCY = 32
SETTLE_SECONDS = 5.0
"""How long a scan waits for this store's running replica calls before it starts."""


@dataclass(frozen=True)
class RepairReport:
    """What a :meth:`~polystore.replication.ReplicatedStore.repair` pass did (so far).

    Attributes:
        replicas: The replicas, in scanning order.
        scanned: Distinct keys examined.
        repaired: Keys that at least one replica lacked or held stale, now copied.
        copies: Replica writes made (a key copied to two replicas counts two).
        reaped: Tombstones removed from every replica.
        current: The replica being scanned (``None`` once done).
        done: Whether every replica has been scanned.
    """

    replicas: tuple[str, ...]
    scanned: int = 0
    repaired: int = 0
    copies: int = 0
    reaped: int = 0
    current: str | None = None
    done: bool = False


async def _batches(keys: AsyncIterator[str], size: int) -> AsyncIterator[list[str]]:
    batch: list[str] = []
    async for key in keys:
        batch.append(key)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


async def _read_batch(store: ReplicatedStore, keys: list[str]) -> Outcome[list[JSONValue | None]]:
    calls = {name: replica.get_many(keys) for name, replica in store.replicas.items()}
    return await fan_out(
        calls, len(calls), store.background, f"batch read of {len(keys)} keys", wait_all=True
    )


def _held_before(
    outcome: Outcome[list[JSONValue | None]], earlier: Sequence[str], index: int
) -> bool:
    return bool(_holders(outcome, earlier, index))


def _states(outcome: Outcome[list[JSONValue | None]], key: str, index: int) -> dict[str, State]:
    out: dict[str, State] = {}
    for name, values in outcome.results.items():
        raw = values[index]
        out[name] = () if raw is None else state_of(Entry(key, raw, Version("")), name, key)
    return out


async def scan_live(store: ReplicatedStore, prefix: str, batch_size: int) -> AsyncIterator[str]:
    """Stream the live keys of ``store`` (see the module docstring).

    A replica that cannot be scanned is passed over, as long as ``N - W + 1`` replicas
    are scanned (enough to include one that took each acknowledged write) and no key
    was left for it to list.

    Raises:
        QuorumUnavailableError: Too few replicas could be scanned, a batch could not be
            read from a read quorum, or a replica failed after keys were left to it.
    """
    await store.background.settle(SETTLE_SECONDS)
    names = list(store.replicas)
    scanned: list[str] = []
    failed: list[str] = []
    relied_on: set[str] = set()
    for position, name in enumerate(names):
        later = names[position + 1 :]
        keys = store.replicas[name].scan(prefix=prefix, batch_size=batch_size)
        try:
            async for batch in _batches(keys, batch_size):
                outcome = await _read_batch(store, batch)
                store._check_read(outcome, "scan", None)
                now = store.now_ms()
                for index, key in enumerate(batch):
                    holders = _holders(outcome, later, index)
                    if holders:
                        relied_on.update(holders)
                        continue
                    joined = store.resolver.join(_states(outcome, key, index).values())
                    if store.resolver.resolve(joined, now).live:
                        yield key
        except QuorumUnavailableError:
            raise
        except StoreUnavailableError as exc:
            if name in relied_on:
                raise _scan_failed(store, name, exc) from exc
            failed.append(name)
            continue
        scanned.append(name)
    needed = len(names) - store.write_quorum + 1
    if len(scanned) < needed:
        raise QuorumUnavailableError(
            f"{len(scanned)} replicas could be scanned; {needed} are needed to see every "
            f"acknowledged write (failed: {', '.join(failed)})",
            required=needed,
            acknowledged=len(scanned),
            failed=tuple(failed),
            backend=store.name,
            operation="scan",
        )


def _holders(
    outcome: Outcome[list[JSONValue | None]], names: Sequence[str], index: int
) -> list[str]:
    return [
        name
        for name in names
        if name in outcome.results and outcome.results[name][index] is not None
    ]


def _scan_failed(store: ReplicatedStore, name: str, cause: BaseException) -> QuorumUnavailableError:
    return QuorumUnavailableError(
        f"replica {name} failed during the scan after keys were left for it to list; "
        f"some keys may be missing, scan again ({cause!r})",
        required=len(store.replicas),
        acknowledged=len(store.replicas) - 1,
        failed=(name,),
        backend=store.name,
        operation="scan",
    )


async def run_repair(
    store: ReplicatedStore,
    progress: Callable[[RepairReport], object] | None,
    batch_size: int,
) -> RepairReport:
    """One anti-entropy pass over ``store`` (see the module docstring)."""
    await store.background.settle(SETTLE_SECONDS)
    names = list(store.replicas)
    report = RepairReport(replicas=tuple(names))
    for position, name in enumerate(names):
        report = replace(report, current=name)
        keys = store.replicas[name].scan(prefix="", batch_size=batch_size)
        try:
            async for batch in _batches(keys, batch_size):
                outcome = await _read_batch(store, batch)
                _need_all(store, outcome)
                report = await _repair_batch(store, outcome, batch, names[:position], report)
                if progress is not None:
                    progress(report)
        except StoreUnavailableError as exc:
            if isinstance(exc, QuorumUnavailableError):
                raise
            raise _unavailable(store, (name,), exc) from exc
    report = replace(report, current=None, done=True)
    if progress is not None:
        progress(report)
    return report


def _need_all(store: ReplicatedStore, outcome: Outcome[list[JSONValue | None]]) -> None:
    missing = tuple(sorted((*outcome.errors, *outcome.pending)))
    if missing:
        cause = next(iter(outcome.errors.values()), None)
        raise _unavailable(store, missing, cause) from cause


def _unavailable(
    store: ReplicatedStore, missing: tuple[str, ...], cause: BaseException | None
) -> QuorumUnavailableError:
    return QuorumUnavailableError(
        f"repair needs every replica; {', '.join(missing)} did not answer ({cause!r}); "
        "what was repaired stays repaired, run it again once the replica is back",
        required=len(store.replicas),
        acknowledged=len(store.replicas) - len(missing),
        failed=missing,
        backend=store.name,
        operation="repair",
    )


async def _repair_batch(
    store: ReplicatedStore,
    outcome: Outcome[list[JSONValue | None]],
    batch: list[str],
    earlier: Sequence[str],
    report: RepairReport,
) -> RepairReport:
    todo = [
        (key, index) for index, key in enumerate(batch) if not _held_before(outcome, earlier, index)
    ]
    scanned, repaired, copies, reaped = len(todo), 0, 0, 0
    for start in range(0, len(todo), _CONCURRENCY):
        chunk = todo[start : start + _CONCURRENCY]
        results = await gather_all(
            _repair_key(store, key, _states(outcome, key, index)) for key, index in chunk
        )
        for written, was_reaped in results:
            repaired += written > 0
            copies += written
            reaped += was_reaped
    return replace(
        report,
        scanned=report.scanned + scanned,
        repaired=report.repaired + repaired,
        copies=report.copies + copies,
        reaped=report.reaped + reaped,
    )


async def _repair_key(
    store: ReplicatedStore, key: str, states: dict[str, State]
) -> tuple[int, bool]:
    joined = store.resolver.join(states.values())
    if all(state == joined for state in states.values()):
        if _reapable(store, joined):
            return 0, await _reap(store, key, joined)
        return 0, False
    written = 0
    for name, state in states.items():
        if state != joined:
            merged = await merge_into(
                store.replicas[name], name, key, joined, store.resolver, store.now_ms
            )
            written += merged.written
    return written, False


def _reapable(store: ReplicatedStore, state: State) -> bool:
    if not state or not all(sibling.deleted for sibling in state):
        return False
    newest = max(sibling.stamp.physical_ms for sibling in state)
    return newest < store.now_ms() - store.tombstone_grace * 1000


async def _reap(store: ReplicatedStore, key: str, joined: State) -> bool:
    reaped = True
    for name, replica in store.replicas.items():
        entry = await replica.get_entry(key)
        if entry is None:
            continue
        if state_of(entry, name, key) != joined:
            reaped = False  # written since: keep it
            continue
        try:
            await replica.delete(key, if_version=entry.version)
        except ConflictError:
            reaped = False
    return reaped
