"""A :class:`~polystore.protocol.DataStore` copied to several stores (multi-master).

Every write goes to every replica at once and returns when ``write_quorum`` of them took
it; every read asks every replica and returns when ``read_quorum`` answered, resolves
what they hold (:mod:`~polystore.replication.resolvers`), and repairs the stale ones it
saw in the background (each repair a compare-and-set merge, so it never overwrites a
newer write: :mod:`~polystore.replication.replica`). With ``R + W > N`` a read quorum
always includes a replica that took the latest acknowledged write.

What it declares, and why no more:

- ``TTL``, ``SCAN``, ``DURABLE``, ``SHARED`` when every replica declares them.
- Not ``CAS``: a compare-and-set checked on a quorum of independent stores without a
  consensus protocol can lose: two writers may each pass the check on different replicas,
  and a write refused on the quorum may still have landed on one replica and win later.
  Conditional writes (``if_version``, ``if_absent``) are refused.
- Not ``TRANSACTIONS``: the replicas commit independently.
- Not ``QUERY``: the value is nested in an envelope, which top-level ``find`` filters on
  the replicas cannot see.

Every replica must declare ``CAS`` (the merges need it).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from datetime import datetime, timezone
from typing import Any, TypeVar

from polystore.base import BaseStore
from polystore.errors import (
    ConfigurationError,
    ValidationError,
)
from polystore.protocol import DataStore
from polystore.replication.context import ContextCache
from polystore.replication.envelope import Sibling, State
from polystore.replication.hlc import HybridLogicalClock
from polystore.replication.quorum import (
    Background,
    Outcome,
    fan_out,
    gather_all,
    require_read,
    require_write,
)
from polystore.replication.repair import RepairReport, run_repair, scan_live
from polystore.replication.replica import Merged, merge_into, merge_many, state_of
from polystore.replication.resolvers import LastWriteWins, Resolution, Resolver, context_of
from polystore.replication.versions import VersionCache
from polystore.types import TTL, Capabilities, Entry, Health, JSONInput, JSONValue, Version

__all__ = ["ReplicatedStore"]

T = TypeVar("T")

_OFFERED = Capabilities.TTL | Capabilities.SCAN | Capabilities.DURABLE | Capabilities.SHARED


class ReplicatedStore(BaseStore):
    """One namespace copied to several stores, each a full replica.

    Args:
        replicas: The replicas by name (any backends, mixed freely; each must declare CAS).
        write_quorum: Replicas that must take a write (default: a majority).
        read_quorum: Replicas that must answer a read (default: a majority).
        resolver: :class:`LastWriteWins` (default) or :class:`VectorClock`.
        node_id: This writer's id in stamps and vector clocks (default: random per
            instance); 1 to 64 letters, digits, ``_`` or ``-``.
        clock: Wall-clock seconds since the epoch (default ``time.time``).
        name: The store's name, for messages.
        max_drift: Seconds ahead of the local clock a read stamp may be and still be
            followed by this node's clock (further ahead: refused and logged).
        tombstone_grace: Seconds a tombstone is kept before :meth:`repair` reaps it
            (once every replica holds it).
        context_size: Keys whose last read or write is remembered: as the implicit
            context of the next write (vector clocks; :mod:`.context`), and as the
            version each replica holds, to write in one round trip (:mod:`.versions`).
        background_limit: Most replica calls left running after their call returned.

    Raises:
        ConfigurationError: Bad replicas, quorum, resolver, node id or clock.
    """

    def __init__(
        self,
        replicas: Mapping[str, DataStore],
        *,
        write_quorum: int | None = None,
        read_quorum: int | None = None,
        resolver: Resolver | None = None,
        node_id: str | None = None,
        clock: Callable[[], float] | None = None,
        name: str = "replicated",
        max_drift: float = 60.0,
        tombstone_grace: float = 86_400.0,
        context_size: int = 10_000,
        background_limit: int = 10_000,
    ) -> None:
        if not isinstance(replicas, Mapping) or not replicas:
            raise ConfigurationError("replicas must be a non-empty mapping of name to store")
        self.replicas: dict[str, DataStore] = dict(replicas)
        count = len(self.replicas)
        self.write_quorum = _quorum(write_quorum, count, "write_quorum")
        self.read_quorum = _quorum(read_quorum, count, "read_quorum")
        resolver = LastWriteWins() if resolver is None else resolver
        if not isinstance(resolver, Resolver):
            raise ConfigurationError(f"resolver must be a Resolver; got {resolver!r}")
        self.resolver: Resolver = resolver
        if clock is not None and not callable(clock):
            raise ConfigurationError("clock must be a callable returning seconds")
        self.clock: Callable[[], float] = clock if clock is not None else time.time
        node = node_id if node_id is not None else uuid.uuid4().hex[:12]
        self.hlc = HybridLogicalClock(node, clock=self.clock, max_drift=max_drift)
        self.node_id = self.hlc.node_id
        if not tombstone_grace >= 0:
            raise ConfigurationError("tombstone_grace must be >= 0")
        self.tombstone_grace = float(tombstone_grace)
        self.contexts = ContextCache(context_size)
        self.versions = VersionCache(context_size)
        self.background = Background(background_limit)
        capabilities = _OFFERED
        for replica_name, replica in self.replicas.items():
            if Capabilities.CAS not in replica.capabilities:
                raise ConfigurationError(
                    f"replica {replica_name!r} does not declare cas, which replication "
                    "needs so that a repair never overwrites a newer write"
                )
            capabilities &= replica.capabilities
        super().__init__(name, capabilities)

    def __repr__(self) -> str:
        return (
            f"<ReplicatedStore {self.name!r} replicas={list(self.replicas)} "
            f"W={self.write_quorum} R={self.read_quorum} resolver={self.resolver!r}>"
        )

    def now_ms(self) -> int:
        """The wall clock in epoch milliseconds."""
        return int(self.clock() * 1000)

    async def aclose(self, timeout: float | None = 5.0) -> None:
        """Wait up to ``timeout`` seconds for background replica calls, cancel the rest.

        The replicas themselves are not closed: their backends own them.
        """
        await self.background.drain(timeout)

    # -- reads ------------------------------------------------------------------------------

    async def _read_state(self, key: str, operation: str) -> State:
        outcome = await fan_out(
            {name: r.get_entry(key) for name, r in self.replicas.items()},
            self.read_quorum,
            self.background,
            f"{operation} {key!r}",
        )
        self._check_read(outcome, operation, key)
        states = {name: state_of(e, name, key) for name, e in outcome.results.items()}
        for name, entry in outcome.results.items():
            if entry is not None:
                self.versions.put(name, key, entry.version, states[name])
        joined = self.resolver.join(states.values())
        self._observe(key, joined)
        for name, state in states.items():
            if state != joined:
                self._repair_later(name, key, joined, outcome.results[name])
        return joined

    async def _resolved(self, key: str, operation: str) -> tuple[State, Resolution]:
        state = await self._read_state(key, operation)
        resolution = self.resolver.resolve(state, self.now_ms())
        if resolution.merged:
            state = self._write_back_merge(key, state, resolution.value, resolution.expires_ms)
        return state, resolution

    async def _get_entry(self, key: str) -> Entry | None:
        state, resolution = await self._resolved(key, "get_entry")
        if not resolution.live:
            return None
        expires = resolution.expires_ms
        expires_at = (
            None if expires is None else datetime.fromtimestamp(expires / 1000, timezone.utc)
        )
        return Entry(key, resolution.value, self.resolver.version(state), expires_at)

    async def _get(self, key: str) -> JSONValue | None:
        _, resolution = await self._resolved(key, "get")
        return resolution.value if resolution.live else None

    async def _exists(self, key: str) -> bool:
        _, resolution = await self._resolved(key, "exists")
        return resolution.live

    async def _get_many(self, keys: list[str]) -> list[JSONValue | None]:
        outcome = await fan_out(
            {name: r.get_many(keys) for name, r in self.replicas.items()},
            self.read_quorum,
            self.background,
            f"get_many of {len(keys)} keys",
        )
        self._check_read(outcome, "get_many", None)
        now = self.now_ms()
        values: list[JSONValue | None] = []
        for index, key in enumerate(keys):
            states = {
                name: () if raw[index] is None else state_of(_entry(key, raw[index]), name, key)
                for name, raw in outcome.results.items()
            }
            joined = self.resolver.join(states.values())
            self._observe(key, joined)
            for name, state in states.items():
                if state != joined:
                    self._repair_later(name, key, joined, False)
            resolution = self.resolver.resolve(joined, now)
            if resolution.merged:
                self._write_back_merge(key, joined, resolution.value, resolution.expires_ms)
            values.append(resolution.value if resolution.live else None)
        return values

    # -- writes -----------------------------------------------------------------------------

    async def save(
        self,
        key: str,
        value: JSONInput,
        *,
        ttl: TTL | None = None,
        if_version: Version | None = None,
        if_absent: bool = False,
        context: Version | None = None,
    ) -> Version:
        """Store ``value`` on every replica; return when ``write_quorum`` took it.

        Args:
            key: Non-empty str, at most 1024 UTF-8 bytes, no NUL.
            value: A JSON value.
            ttl: Seconds until the entry expires (``TTL`` replicas only).
            if_version: Refused: a replicated store does not offer compare-and-set.
            if_absent: Refused, likewise.
            context: Under :class:`VectorClock`, the ``version`` of an entry read
                earlier: this write supersedes every sibling that read saw. Without it,
                the store's last read or write of ``key`` is the context (implicit).

        Returns:
            The new version (a stamp under last-write-wins, a vector clock otherwise).

        Raises:
            ValidationError: Bad key, value, ttl or context (before any I/O).
            UnsupportedOperationError: ``if_version`` or ``if_absent`` given.
            QuorumError: Fewer than ``write_quorum`` replicas took the write.
        """
        checked_ttl = self._check_write(key, ttl, if_version, if_absent)
        plain = self.codec.decode(self.encode(value, key))
        clock = self._context(key, context)
        sibling = self._sibling(plain, checked_ttl, clock)
        await self._write(key, (sibling,), "save")
        return self._version_of(key, sibling)

    async def _save(
        self,
        key: str,
        value: JSONValue,
        data: bytes,
        ttl: float | None,
        if_version: Version | None,
        if_absent: bool,
    ) -> Version:  # pragma: no cover - save() is overridden
        sibling = self._sibling(self.codec.decode(data), ttl, self._context(key, None))
        await self._write(key, (sibling,), "save")
        return self._version_of(key, sibling)

    async def _delete(self, key: str, if_version: Version | None) -> bool:
        tombstone = self._sibling(None, None, self._context(key, None), deleted=True)
        merged = await self._write(key, (tombstone,), "delete")
        now = self.now_ms()
        # What the acknowledging replicas held, joined: one of them may lag behind.
        before = self.resolver.join(m.previous for m in merged.values())
        return self.resolver.resolve(before, now).live

    async def _save_many(
        self, items: list[tuple[str, JSONValue, bytes]], ttl: float | None
    ) -> list[Version]:
        siblings = {
            key: self._sibling(self.codec.decode(data), ttl, self._context(key, None))
            for key, _, data in items
        }
        await self._write_many({key: (s,) for key, s in siblings.items()}, "save_many")
        return [self._version_of(key, s) for key, s in siblings.items()]

    async def _delete_many(self, keys: list[str]) -> int:
        states: dict[str, State] = {
            key: (self._sibling(None, None, self._context(key, None), deleted=True),)
            for key in keys
        }
        merged = await self._write_many(states, "delete_many")
        now = self.now_ms()
        join, resolve = self.resolver.join, self.resolver.resolve
        return sum(
            resolve(join(per[key].previous for per in merged.values()), now).live for key in keys
        )

    async def _write(self, key: str, state: State, operation: str) -> dict[str, Merged]:
        calls = {
            name: merge_into(
                replica, name, key, state, self.resolver, self.now_ms, cache=self.versions
            )
            for name, replica in self.replicas.items()
        }
        outcome = await fan_out(calls, self.write_quorum, self.background, f"{operation} {key!r}")
        self._check_write_outcome(outcome, operation, key)
        return outcome.results

    async def _write_many(
        self, states: dict[str, State], operation: str
    ) -> dict[str, dict[str, Merged]]:
        calls = {
            name: merge_many(replica, name, states, self.resolver, self.now_ms, self.versions)
            for name, replica in self.replicas.items()
        }
        what = f"{operation} of {len(states)} keys"
        outcome = await fan_out(calls, self.write_quorum, self.background, what)
        self._check_write_outcome(outcome, operation, None)
        return outcome.results

    # -- helpers ----------------------------------------------------------------------------

    def _sibling(
        self,
        value: JSONValue,
        ttl: float | None,
        context: dict[str, int],
        *,
        deleted: bool = False,
    ) -> Sibling:
        stamp = self.hlc.now()
        clock: dict[str, int] = {}
        if self.resolver.uses_vector_clocks:
            clock = dict(context)
            clock[self.node_id] = stamp.packed
        expires = None if ttl is None else int(self.clock() * 1000 + ttl * 1000)
        return Sibling(stamp, value, deleted, expires, clock)

    def _version_of(self, key: str, sibling: Sibling) -> Version:
        if self.resolver.uses_vector_clocks:
            self.contexts.remember(key, sibling.clock)
        return self.resolver.version((sibling,))

    def _context(self, key: str, token: Version | None) -> dict[str, int]:
        if not self.resolver.uses_vector_clocks:
            if token is not None and not isinstance(token, str):
                raise ValidationError("context must be a version token (str)", key=key)
            return {}
        return self.contexts.for_write(key, token, self.name)

    def _observe(self, key: str, state: State) -> None:
        if state:
            self.hlc.observe(max(s.stamp for s in state))
        if self.resolver.uses_vector_clocks:
            self.contexts.remember(key, context_of(state))

    def _write_back_merge(
        self, key: str, state: State, value: JSONValue, expires_ms: int | None
    ) -> State:
        stamp = self.hlc.now()
        clock = context_of(state)
        clock[self.node_id] = stamp.packed
        merged: State = (Sibling(stamp, value, False, expires_ms, clock),)
        self.contexts.remember(key, clock)
        for name in self.replicas:
            self._repair_later(name, key, merged, False)
        return merged

    def _repair_later(self, name: str, key: str, state: State, known: Entry | bool | None) -> None:
        replica = self.replicas[name]
        work = merge_into(
            replica, name, key, state, self.resolver, self.now_ms, known=known, cache=self.versions
        )
        self.background.spawn(work, f"read repair of {key!r} on {name}")

    def _check_read(self, outcome: Outcome[Any], operation: str, key: str | None) -> None:
        require_read(outcome, self.read_quorum, self.name, operation, key)

    def _check_write_outcome(self, outcome: Outcome[Any], operation: str, key: str | None) -> None:
        require_write(outcome, self.write_quorum, self.name, operation, key)

    async def _health(self) -> Health:
        started = time.perf_counter()
        checks = await gather_all(replica.health() for replica in self.replicas.values())
        down = [name for name, h in zip(self.replicas, checks, strict=True) if not h.ok]
        up = len(self.replicas) - len(down)
        ok = up >= max(self.read_quorum, self.write_quorum)
        detail = f"{up}/{len(self.replicas)} replicas up" + (
            f" (down: {', '.join(down)})" if down else ""
        )
        latency = (time.perf_counter() - started) * 1000
        return Health(ok=ok, backend=self.name, latency_ms=latency, detail=detail)

    # -- scan and repair (polystore.replication.repair) ---------------------------------------

    def _scan(self, prefix: str, batch_size: int) -> AsyncIterator[str]:
        return scan_live(self, prefix, batch_size)

    async def repair(
        self,
        progress: Callable[[RepairReport], object] | None = None,
        *,
        batch_size: int = 500,
    ) -> RepairReport:
        """Bring every replica in line with the others (anti-entropy).

        Scans every replica, copies the winning state of each key to the replicas that
        lack it (merges: never over a newer write) and reaps tombstones older than
        ``tombstone_grace`` once every replica holds them. Streams in batches of
        ``batch_size`` keys (memory stays flat); what was repaired stays repaired, so
        running it again after a failure resumes the work.

        Args:
            progress: Called with the report so far after every batch.
            batch_size: Keys per batch.

        Raises:
            StoreUnavailableError: A replica did not answer (named in the message).
        """
        return await run_repair(self, progress, batch_size)


def _quorum(value: object, count: int, what: str) -> int:
    if value is None:
        return count // 2 + 1
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= count:
        raise ConfigurationError(f"{what} must be an int from 1 to {count}; got {value!r}")
    return value


def _entry(key: str, value: JSONValue) -> Entry:
    return Entry(key, value, Version(""))
