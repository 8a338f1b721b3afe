"""The part of :class:`~polystore.base.BaseStore` that coalesces concurrent single-key
calls into batches (the mechanism is in :mod:`polystore.coalesce`)."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TYPE_CHECKING, TypeVar, cast

from polystore.coalesce import CoalesceStats, Lane, ReadResult, WriteOp, WriteResult
from polystore.errors import StoreError, ValidationError
from polystore.types import Entry, JSONValue, Version

__all__ = ["CoalescingStore"]

T = TypeVar("T")


class CoalescingStore:
    """Lanes of coalesced reads and writes of one store, and the batch methods a backend
    overrides to opt in (:meth:`_get_entries_batch`, :meth:`_write_batch`)."""

    name: str
    coalesce_stats: CoalesceStats
    _read_lane: Lane[str, Entry | None] | None
    _write_lane: Lane[WriteOp, Version | bool] | None

    if TYPE_CHECKING:

        def _within(
            self, operation: str, key: str | None, work: Awaitable[T], *, write: bool = False
        ) -> Awaitable[T]: ...

        async def _get(self, key: str) -> JSONValue | None: ...

        async def _get_entry(self, key: str) -> Entry | None: ...

        async def _exists(self, key: str) -> bool: ...

        async def _save(
            self,
            key: str,
            value: JSONValue,
            data: bytes,
            ttl: float | None,
            if_version: Version | None,
            if_absent: bool,
        ) -> Version: ...

        async def _delete(self, key: str, if_version: Version | None) -> bool: ...

    def _setup_coalescing(self, coalesce: bool, coalesce_max_batch: int) -> None:
        self.coalesce_stats = CoalesceStats()
        """What the coalescer did (all zero when the store does not coalesce)."""
        self._read_lane: Lane[str, Entry | None] | None = None
        self._write_lane: Lane[WriteOp, Version | bool] | None = None
        if coalesce_max_batch < 1:
            raise ValidationError("coalesce_max_batch must be at least 1", backend=self.name)
        cls = type(self)
        if coalesce and cls._get_entries_batch is not CoalescingStore._get_entries_batch:
            self._read_lane = Lane(
                self._send_reads,
                max_batch=coalesce_max_batch,
                stats=self.coalesce_stats,
                write=False,
            )
        if coalesce and cls._write_batch is not CoalescingStore._write_batch:
            self._write_lane = Lane(
                self._send_writes,
                max_batch=coalesce_max_batch,
                stats=self.coalesce_stats,
                write=True,
            )

    @property
    def coalescing(self) -> bool:
        """Whether concurrent single-key calls are sent as batches."""
        return self._read_lane is not None or self._write_lane is not None

    def _may_coalesce(self) -> bool:
        """Whether the running task's call may join a batch run by another task.

        A backend returns ``False`` where that task holds something the batch would wait
        for (an open transaction holding the write lock).
        """
        return True

    async def _coalesced_get(self, key: str) -> JSONValue | None:
        lane = cast("Lane[str, Entry | None]", self._read_lane)
        if lane.idle or not self._may_coalesce():
            lane.enter()
            try:
                return await self._get(key)
            finally:
                lane.leave()
        entry = await lane.submit(key, "get", key)
        return None if entry is None else entry.value

    async def _coalesced_get_entry(self, key: str) -> Entry | None:
        lane = cast("Lane[str, Entry | None]", self._read_lane)
        if lane.idle or not self._may_coalesce():
            lane.enter()
            try:
                return await self._get_entry(key)
            finally:
                lane.leave()
        return await lane.submit(key, "get_entry", key)

    async def _coalesced_exists(self, key: str) -> bool:
        lane = cast("Lane[str, Entry | None]", self._read_lane)
        if lane.idle or not self._may_coalesce():
            lane.enter()
            try:
                return await self._exists(key)
            finally:
                lane.leave()
        return await lane.submit(key, "exists", key) is not None

    async def _coalesced_save(
        self,
        key: str,
        value: JSONValue,
        data: bytes,
        ttl: float | None,
        if_version: Version | None,
        if_absent: bool,
    ) -> Version:
        lane = cast("Lane[WriteOp, Version | bool]", self._write_lane)
        if lane.idle or not self._may_coalesce():
            lane.enter()
            try:
                return await self._save(key, value, data, ttl, if_version, if_absent)
            finally:
                lane.leave()
        op = WriteOp(key, value, data, ttl, if_version, if_absent)
        return cast(Version, await lane.submit(op, "save", key))

    async def _coalesced_delete(self, key: str, if_version: Version | None) -> bool:
        lane = cast("Lane[WriteOp, Version | bool]", self._write_lane)
        if lane.idle or not self._may_coalesce():
            lane.enter()
            try:
                return await self._delete(key, if_version)
            finally:
                lane.leave()
        op = WriteOp(key, None, None, None, if_version, False)
        return cast(bool, await lane.submit(op, "delete", key))

    async def _send_reads(self, keys: list[str]) -> list[Entry | StoreError | None]:
        unique = list(dict.fromkeys(keys))
        results = await self._within("get_many", None, self._get_entries_batch(unique))
        if len(unique) == len(keys):
            return results
        by_key = dict(zip(unique, results, strict=True))
        return [by_key[key] for key in keys]

    async def _send_writes(self, ops: list[WriteOp]) -> list[Version | bool | StoreError]:
        return await self._within("save_many", None, self._write_batch(ops), write=True)

    async def _get_entries_batch(self, keys: list[str]) -> list[ReadResult]:
        """The live entries of ``keys`` (distinct, validated), in order, in one request.

        Override to let the store coalesce reads; an item may be a ``StoreError`` for a
        key that failed alone.
        """
        raise NotImplementedError

    async def _write_batch(self, ops: list[WriteOp]) -> list[WriteResult]:
        """Apply ``ops`` (validated, encoded; a key may repeat) in order, in one request.

        Override to let the store coalesce writes. Answer per item: the version of a
        save, whether a delete found a live entry, or the item's own ``StoreError``
        (``ConflictError``, ``AlreadyExistsError``) without failing the others. Raise
        only for a failure of the whole batch (``UnknownOutcomeError`` when it may have
        been partly applied).
        """
        raise NotImplementedError
