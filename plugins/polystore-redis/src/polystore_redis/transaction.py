"""Transactions of the ``redis`` backend: buffered writes applied atomically at commit.

Writes are staged in memory (reads inside the transaction see them) and nothing reaches
the server before commit. Conditions (``if_version``, ``if_absent``) are checked when
staged and again at commit, atomically with the writes:

* on a single server: ``WATCH`` the conditioned keys, ``MGET`` them and check their
  versions, then ``MULTI`` … ``EXEC``; if a watched key changed in between, ``EXEC``
  aborts and :class:`~polystore.ConflictError` is raised;
* on Redis Cluster (whose redis-py client cannot ``WATCH`` from asyncio): one Lua
  script checks every condition and applies every write. The namespace's keys share
  one slot (hash tags), which is why cluster stores declare ``TRANSACTIONS`` only then.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from polystore import (
    AlreadyExistsError,
    BaseTransaction,
    ConflictError,
    Entry,
    JSONValue,
    Version,
    new_version,
)
from polystore_redis.errors import RedisErrors
from polystore_redis.scripts import VERSION_LENGTH, ttl_to_ms

if TYPE_CHECKING:
    from polystore_redis.store import RedisStore

__all__ = ["RedisTransaction"]


@dataclass(frozen=True, slots=True)
class _Staged:
    """A staged write; ``payload`` None means delete."""

    payload: bytes | None
    px: int | None = None
    expires_at: float | None = None

    @property
    def version(self) -> Version:
        assert self.payload is not None
        return Version(self.payload[:VERSION_LENGTH].decode("ascii"))


@dataclass(frozen=True, slots=True)
class _Condition:
    if_version: Version | None
    if_absent: bool


class RedisTransaction(BaseTransaction):
    """Staged writes of one :class:`~polystore_redis.store.RedisStore` transaction."""

    store: RedisStore

    def __init__(self, store: RedisStore) -> None:
        super().__init__(store)
        self._staged: dict[str, _Staged] = {}
        self._conditions: dict[str, _Condition] = {}

    async def _current(self, key: str) -> Entry | None:
        staged = self._staged.get(key)
        if staged is None:
            return await self.store._get_entry(key, primary=True)
        if staged.payload is None:
            return None
        value = self.store._decode(staged.payload, key)
        expires = staged.expires_at
        expires_at = None if expires is None else datetime.fromtimestamp(expires, tz=timezone.utc)
        return Entry(key, value, staged.version, expires_at)

    async def _get_entry(self, key: str) -> Entry | None:
        return await self._current(key)

    async def _check(
        self, key: str, if_version: Version | None, if_absent: bool, operation: str
    ) -> Entry | None:
        current = await self._current(key)
        name = self.store.name
        if if_absent and current is not None:
            raise AlreadyExistsError(
                "key already exists", backend=name, operation=operation, key=key
            )
        if if_version is not None and (current is None or current.version != if_version):
            raise ConflictError("version mismatch", backend=name, operation=operation, key=key)
        # A condition on a key this transaction has not written yet is checked again at
        # commit; once staged, the key's state is the transaction's own.
        if key not in self._staged and (if_absent or if_version is not None):
            self._conditions[key] = _Condition(if_version, if_absent)
        return current

    async def _save(
        self,
        key: str,
        value: JSONValue,
        data: bytes,
        ttl: float | None,
        if_version: Version | None,
        if_absent: bool,
    ) -> Version:
        if if_version is not None or if_absent:
            await self._check(key, if_version, if_absent, "save")
        version = new_version()
        px = None if ttl is None else ttl_to_ms(ttl)
        expires_at = None if ttl is None else time.time() + ttl
        self._staged[key] = _Staged(version.encode() + data, px, expires_at)
        return version

    async def _delete(self, key: str, if_version: Version | None) -> bool:
        current = await self._check(key, if_version, False, "delete")
        self._staged[key] = _Staged(None)
        return current is not None

    # -- commit -----------------------------------------------------------------------

    async def commit(self) -> None:
        """Apply every staged write atomically, or none.

        Raises:
            ConflictError: A condition no longer holds (``AlreadyExistsError`` for
                ``if_absent``); nothing was written.
            UnknownOutcomeError: The connection failed after ``EXEC`` was sent.
        """
        if not self._staged:
            return
        with RedisErrors(self.store.name, "commit", write=True):
            if self.store._backend.is_cluster:
                await self._commit_script()
            else:
                await self._commit_watched()

    def _fail(self, key: str, condition: _Condition) -> ConflictError:
        name = self.store.name
        if condition.if_absent:
            return AlreadyExistsError(
                "key already exists", backend=name, operation="commit", key=key
            )
        return ConflictError("version mismatch", backend=name, operation="commit", key=key)

    async def _commit_watched(self) -> None:
        base = self.store.layout.base
        client: Any = self.store._client
        async with client.pipeline(transaction=True) as pipe:
            if self._conditions:
                watched = [base + key for key in self._conditions]
                # Nothing is written before EXEC: a failure here has a known outcome.
                with RedisErrors(self.store.name, "commit"):
                    await pipe.watch(*watched)
                    raws = await pipe.execute_command("MGET", *watched)
                for (key, condition), raw in zip(self._conditions.items(), raws, strict=True):
                    if not _holds(condition, raw):
                        raise self._fail(key, condition)
                pipe.multi()
            for key, staged in self._staged.items():
                full = base + key
                if staged.payload is None:
                    pipe.execute_command("DEL", full)
                elif staged.px is None:
                    pipe.execute_command("SET", full, staged.payload)
                else:
                    pipe.execute_command("SET", full, staged.payload, "PX", staged.px)
            await pipe.execute()

    async def _commit_script(self) -> None:
        base = self.store.layout.base
        keys = list(self._staged)
        args: list[Any] = []
        for key in keys:
            condition = self._conditions.get(key)
            staged = self._staged[key]
            if condition is None:
                args += ["", ""]
            elif condition.if_absent:
                args += ["a", ""]
            else:
                args += ["v", condition.if_version]
            args += [staged.payload or b"", "" if staged.px is None else staged.px]
        scripts: Any = self.store._scripts
        failed = int(await scripts.commit(keys=[base + key for key in keys], args=args))
        if failed:
            key = keys[abs(failed) - 1]
            raise self._fail(key, self._conditions[key])


def _holds(condition: _Condition, raw: bytes | None) -> bool:
    if condition.if_absent:
        return raw is None
    if raw is None:
        return False
    return raw[:VERSION_LENGTH].decode("ascii", "replace") == condition.if_version
