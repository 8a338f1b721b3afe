"""The store of the ``redis`` backend: one namespace as plain Redis strings.

Each entry is one string key holding ``version (16 hex) + encoded value``, so a read is
one ``GET`` (a batch one ``MGET``), a write one ``SET`` (``PX`` for a ttl; a plain
``SET`` clears an earlier expiry), create-only one ``SET NX``, and compare-and-set one
Lua script.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from contextlib import asynccontextmanager
from datetime import datetime, timezone
from itertools import chain
from typing import TYPE_CHECKING, Any

import orjson

from polystore import (
    AlreadyExistsError,
    BaseStore,
    Capabilities,
    ConflictError,
    DataStoreTransaction,
    Entry,
    Health,
    JsonCodec,
    JSONValue,
    SerializationError,
    StoreError,
    Version,
    new_version,
    new_versions,
)
from polystore.spi import ReadResult, WriteOp, WriteResult
from polystore_redis.errors import RedisErrors
from polystore_redis.keys import KeyLayout, group_by_slot
from polystore_redis.scripts import VERSION_LENGTH, ttl_to_ms
from polystore_redis.transaction import RedisTransaction

if TYPE_CHECKING:
    from polystore_redis.backend import RedisBackend

__all__ = ["BATCH_CHUNK", "RedisStore"]

BATCH_CHUNK = 1000
"""Keys per MGET/MSET/DEL, and commands per pipeline round trip."""

Command = tuple[Any, ...]


def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _queue_script(pipe: Any, script: Any, key: str, *args: Any) -> None:
    """Queue ``script`` on one key in ``pipe`` (the pipeline loads it if the server lacks it)."""
    pipe.scripts.add(script)
    pipe.evalsha(script.sha, 1, key, *args)


class RedisStore(BaseStore):
    """One namespace of a Redis server or cluster (the reference design's ``RedisStore``).

    Obtain it from :meth:`RedisBackend.namespace`; see :mod:`polystore_redis.keys` for
    where its keys live.

    Attributes:
        namespace: The namespace name.
        layout: The namespace's key layout.
    """

    def __init__(self, backend: RedisBackend, namespace: str, capabilities: Capabilities) -> None:
        layout = KeyLayout(backend.settings.prefix, namespace, hash_tag=backend.hash_tag_namespaces)
        # On a cluster, multi-key commands must be split by slot unless the layout pins
        # the whole namespace to one slot.
        split_by_slot = backend.is_cluster and not layout.single_slot
        settings = backend.settings
        super().__init__(
            f"{backend.name}/{namespace}",
            capabilities,
            retry=backend.retry,
            max_value_bytes=settings.max_value_bytes,
            timeout=settings.timeout,
            # Not on a cluster yet (its pipelines differ: no scripts, split by slot), nor
            # where each write waits for replicas.
            coalesce=settings.coalesce and not backend.is_cluster and not settings.wait_replicas,
            coalesce_max_batch=settings.coalesce_max_batch,
        )
        self.namespace = namespace
        self.layout = layout
        self._backend = backend
        self._client: Any = backend.client
        self._reads: Any = backend.reads  # the primary, or replicas (read_from)
        self._scripts: Any = backend.scripts
        self._base = self.layout.base
        # The JSON codec's decode is orjson.loads plus error translation: call orjson
        # directly on the hot paths and translate on the (rare) failure.
        self._loads: Callable[[bytes], JSONValue] = (
            orjson.loads if type(self.codec) is JsonCodec else self.codec.decode
        )
        self._split_by_slot = split_by_slot

    def _detach(self, closed: Any) -> None:
        """Route every later call to ``closed`` (the backend was closed)."""
        self._client = self._reads = closed
        self._scripts = closed

    # -- decoding ---------------------------------------------------------------------

    def _decode(self, raw: bytes, key: str) -> JSONValue:
        if len(raw) < VERSION_LENGTH:
            raise SerializationError(
                "the stored value has no version header; it was not written by polystore",
                backend=self.name,
                operation="get",
                key=key,
            )
        try:
            return self.codec.decode(raw[VERSION_LENGTH:])
        except SerializationError as exc:
            raise SerializationError(
                exc.message, backend=self.name, operation="get", key=key
            ) from exc

    def _entry(self, key: str, raw: bytes, pttl: int) -> Entry:
        value = self._decode(raw, key)
        version = Version(raw[:VERSION_LENGTH].decode("ascii", "replace"))
        expires_at = None
        if pttl >= 0:
            expires_at = datetime.fromtimestamp(time.time() + pttl / 1000, tz=timezone.utc)
        return Entry(key, value, version, expires_at)

    # -- single keys ------------------------------------------------------------------

    async def _get(self, key: str) -> JSONValue | None:
        with RedisErrors(self.name, "get", key):
            raw = await self._reads.execute_command("GET", self._base + key)
        if raw is None:
            return None
        try:
            return self._loads(raw[VERSION_LENGTH:])
        except (ValueError, SerializationError):
            return self._decode(raw, key)

    async def _get_entry(self, key: str, *, primary: bool = False) -> Entry | None:
        client = self._client if primary else self._reads
        with RedisErrors(self.name, "get_entry", key):
            reply = await self._scripts.get_entry(keys=[self._base + key], client=client)
        if reply is None:
            return None
        return self._entry(key, reply[0], int(reply[1]))

    async def _exists(self, key: str) -> bool:
        with RedisErrors(self.name, "exists", key):
            count = await self._reads.execute_command("EXISTS", self._base + key)
        return bool(count)

    async def _save(
        self,
        key: str,
        value: JSONValue,
        data: bytes,
        ttl: float | None,
        if_version: Version | None,
        if_absent: bool,
    ) -> Version:
        version = new_version()
        payload = version.encode() + data
        full = self._base + key
        with RedisErrors(self.name, "save", key, write=True):
            if if_version is not None:
                px = "" if ttl is None else ttl_to_ms(ttl)
                applied = await self._scripts.cas_save(keys=[full], args=[if_version, payload, px])
            elif if_absent:
                if ttl is None:
                    applied = await self._client.execute_command("SET", full, payload, "NX")
                else:
                    applied = await self._client.execute_command(
                        "SET", full, payload, "PX", ttl_to_ms(ttl), "NX"
                    )
            elif ttl is None:
                await self._client.execute_command("SET", full, payload)
                return version
            else:
                await self._client.execute_command("SET", full, payload, "PX", ttl_to_ms(ttl))
                return version
        if not applied:
            if if_absent:
                raise AlreadyExistsError(
                    "key already exists", backend=self.name, operation="save", key=key
                )
            raise ConflictError("version mismatch", backend=self.name, operation="save", key=key)
        return version

    async def _delete(self, key: str, if_version: Version | None) -> bool:
        full = self._base + key
        with RedisErrors(self.name, "delete", key, write=True):
            if if_version is None:
                return bool(await self._client.execute_command("DEL", full))
            deleted = await self._scripts.cas_delete(keys=[full], args=[if_version])
        if not deleted:
            raise ConflictError("version mismatch", backend=self.name, operation="delete", key=key)
        return True

    # -- batches ----------------------------------------------------------------------

    def _multi_key(self, command: str, keys: list[str]) -> list[Command]:
        """``command`` over ``keys``, split by cluster slot if needed and chunked."""
        groups = group_by_slot(keys).values() if self._split_by_slot else [keys]
        return [(command, *chunk) for group in groups for chunk in _chunks(group, BATCH_CHUNK)]

    async def _run(self, commands: list[Command], client: Any = None) -> list[Any]:
        """Send ``commands``: one directly, more through non-transactional pipelines."""
        client = self._client if client is None else client
        if len(commands) == 1:
            return [await client.execute_command(*commands[0])]
        results: list[Any] = []
        for part in _chunks(commands, BATCH_CHUNK):
            pipe = client.pipeline(transaction=False)
            for command in part:
                pipe.execute_command(*command)
            results.extend(await pipe.execute())
        return results

    async def _get_many(self, keys: list[str]) -> list[JSONValue | None]:
        base = self._base
        full = [base + key for key in keys]
        with RedisErrors(self.name, "get_many"):
            if len(full) <= BATCH_CHUNK and not self._split_by_slot:
                raws = await self._reads.execute_command("MGET", *full)
            else:
                commands = self._multi_key("MGET", full)
                found: dict[str, bytes | None] = {}
                replies = await self._run(commands, self._reads)
                for command, reply in zip(commands, replies, strict=True):
                    found.update(zip(command[1:], reply, strict=True))
                raws = [found[key] for key in full]
        loads = self._loads
        try:
            return [None if raw is None else loads(raw[VERSION_LENGTH:]) for raw in raws]
        except (ValueError, SerializationError):
            decode = self._decode  # find the culprit and raise with its key
            return [
                None if raw is None else decode(raw, key)
                for key, raw in zip(keys, raws, strict=True)
            ]

    async def _save_many(
        self, items: list[tuple[str, JSONValue, bytes]], ttl: float | None
    ) -> list[Version]:
        base = self._base
        versions = new_versions(len(items))
        pairs = [
            (base + key, version.encode() + data)
            for (key, _, data), version in zip(items, versions, strict=True)
        ]
        commands: list[Command]
        if ttl is not None:
            px = ttl_to_ms(ttl)
            commands = [("SET", key, payload, "PX", px) for key, payload in pairs]
        else:
            groups: Iterable[list[tuple[str, bytes]]] = [pairs]
            if self._split_by_slot:
                by_key = dict(pairs)
                slots = group_by_slot(by_key).values()
                groups = [[(key, by_key[key]) for key in group] for group in slots]
            commands = [
                ("MSET", *chain.from_iterable(chunk))
                for group in groups
                for chunk in _chunks(group, BATCH_CHUNK)
            ]
        with RedisErrors(self.name, "save_many", write=True):
            await self._run(commands)
        return versions

    async def _delete_many(self, keys: list[str]) -> int:
        base = self._base
        commands = self._multi_key("DEL", [base + key for key in keys])
        with RedisErrors(self.name, "delete_many", write=True):
            counts = await self._run(commands)
        return sum(int(count) for count in counts)

    # -- coalesced single-key calls (see polystore.coalesce) --------------------------

    async def _get_entries_batch(self, keys: list[str]) -> list[ReadResult]:
        base = self._base
        replies: list[Any] = []
        with RedisErrors(self.name, "get_many"):
            for chunk in _chunks(keys, BATCH_CHUNK):
                full = [base + k for k in chunk]
                replies.extend(await self._scripts.get_entries(keys=full, client=self._reads))
        results: list[ReadResult] = []
        for i, key in enumerate(keys):
            raw = replies[2 * i]
            if raw is None:
                results.append(None)
                continue
            try:
                results.append(self._entry(key, raw, int(replies[2 * i + 1])))
            except SerializationError as exc:
                results.append(exc)
        return results

    async def _write_batch(self, ops: list[WriteOp]) -> list[WriteResult]:
        # One non-transactional pipeline: one round trip, applied in call order.
        versions = new_versions(len(ops))
        pipe = self._client.pipeline(transaction=False)
        for op, version in zip(ops, versions, strict=True):
            full = self._base + op.key
            if op.data is None:
                if op.if_version is None:
                    pipe.execute_command("DEL", full)
                else:
                    _queue_script(pipe, self._scripts.cas_delete, full, op.if_version)
                continue
            payload = version.encode() + op.data
            px: tuple[Any, ...] = () if op.ttl is None else ("PX", ttl_to_ms(op.ttl))
            if op.if_version is not None:
                ttl_ms = px[1] if px else ""
                _queue_script(pipe, self._scripts.cas_save, full, op.if_version, payload, ttl_ms)
            elif op.if_absent:
                pipe.execute_command("SET", full, payload, *px, "NX")
            else:
                pipe.execute_command("SET", full, payload, *px)
        with RedisErrors(self.name, "save_many", write=True):
            try:
                replies = await pipe.execute(raise_on_error=False)
            except BaseException:
                # redis-py loads the pipeline's scripts before the part of execute that
                # resets the pipeline: reset here, so its connection goes back to the pool.
                await pipe.reset()
                raise
        return [
            self._write_result(op, version, reply)
            for op, version, reply in zip(ops, versions, replies, strict=True)
        ]

    def _write_result(self, op: WriteOp, version: Version, reply: Any) -> WriteResult:
        name, operation, key = self.name, op.operation, op.key
        if isinstance(reply, Exception):
            try:
                with RedisErrors(name, operation, key, write=True):
                    raise reply
            except StoreError as exc:
                return exc
        if op.data is None:
            if op.if_version is not None and not reply:
                return ConflictError("version mismatch", backend=name, operation=operation, key=key)
            return bool(reply)
        if op.if_absent and not reply:
            return AlreadyExistsError(
                "key already exists", backend=name, operation=operation, key=key
            )
        if op.if_version is not None and not reply:
            return ConflictError("version mismatch", backend=name, operation=operation, key=key)
        return version

    # -- scan -------------------------------------------------------------------------

    async def _scan_nodes(self) -> list[Any]:
        """Where to scan: ``[None]`` for one server; the cluster nodes holding the keys."""
        if not self._backend.is_cluster:
            return [None]
        client = self._client
        with RedisErrors(self.name, "scan"):
            await client.initialize()
        if self.layout.single_slot:
            return [client.get_node_from_key(self.layout.key("x"))]
        return list(client.get_primaries())

    async def _scan(self, prefix: str, batch_size: int) -> AsyncIterator[str]:
        pattern = self.layout.pattern(prefix)
        strip = self.layout.strip
        for node in await self._scan_nodes():
            cursor = 0
            while True:
                with RedisErrors(self.name, "scan"):
                    if node is None:
                        cursor, raws = await self._reads.scan(
                            cursor=cursor, match=pattern, count=batch_size
                        )
                    else:
                        cursors, raws = await self._client.scan(
                            cursor=cursor, match=pattern, count=batch_size, target_nodes=node
                        )
                        cursor = cursors[node.name]
                for raw in raws:
                    key = strip(raw)
                    if key is not None:
                        yield key
                if not cursor:
                    break

    # -- transactions and health ------------------------------------------------------

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[DataStoreTransaction]:
        tx = RedisTransaction(self)
        yield tx
        await tx.commit()

    async def _health(self) -> Health:
        return await self._backend.health()
