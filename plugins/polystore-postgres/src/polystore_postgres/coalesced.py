"""Coalesced single-key calls of a namespace (see :mod:`polystore.coalesce`).

A batch of reads is one ``= ANY($1)`` statement. A batch of plain saves with one ttl is
one ``unnest`` upsert; any other batch of writes is one transaction. Either way one
commit, so one WAL flush, serves the whole batch. Rows are written in key order (the
writes to one key keep their call order), the order every batch statement of the store
locks rows in, so concurrent batches cannot deadlock.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import orjson

from polystore import ConflictError
from polystore.spi import Entry, ReadResult, Version, WriteOp, WriteResult, new_versions
from polystore_postgres import ops
from polystore_postgres.sql import LIVE, TableSQL

if TYPE_CHECKING:
    from polystore_postgres.store import PostgreSQLStore

__all__ = ["read_batch", "write_batch"]


def get_entries_sql(sql: TableSQL) -> str:
    """Live entries of the keys in ``$1``."""
    # The table name is allow-listed and quoted; values are bound parameters.
    table = sql.qualified
    return f"SELECT key, value, version, expires_at FROM {table} WHERE key = ANY($1::text[]) AND {LIVE}"  # noqa: E501, S608


async def read_batch(store: PostgreSQLStore, sql: TableSQL, keys: list[str]) -> list[ReadResult]:
    """The live entries of ``keys`` (distinct), in order: one statement."""
    statement = get_entries_sql(sql)
    found: dict[str, Entry] = {}
    async with store.primary_call("get_many") as call:
        rows = await call.conn.fetch(statement, keys, timeout=call.remaining())
    for key, text, version, expires_at in rows:
        found[key] = Entry(key, orjson.loads(text), Version(version), expires_at)
    return [found.get(key) for key in keys]


def _plain(ops_: list[WriteOp]) -> bool:
    ttl = ops_[0].ttl
    return all(
        op.data is not None and op.if_version is None and not op.if_absent and op.ttl == ttl
        for op in ops_
    )


async def write_batch(
    store: PostgreSQLStore, sql: TableSQL, batch: list[WriteOp]
) -> list[WriteResult]:
    """Apply ``batch`` in one commit; each op's own version, bool or conflict."""
    if _plain(batch):
        return await _upsert_all(store, sql, batch)
    # Key order, stable: the writes to one key keep their call order.
    order = sorted(range(len(batch)), key=lambda i: batch[i].key)
    results: list[WriteResult | None] = [None] * len(batch)
    name = store.name
    async with store.batch_call("save_many", 2) as call:  # a transaction
        for i in order:
            op = batch[i]
            try:
                if op.data is None:
                    done: WriteResult = await ops.remove(
                        call.conn, sql, name, op.key, op.if_version, call.remaining()
                    )
                else:
                    done = await ops.write(
                        call.conn,
                        sql,
                        name,
                        op.key,
                        op.data,
                        op.ttl,
                        op.if_version,
                        op.if_absent,
                        call.remaining(),
                    )
            except ConflictError as exc:  # AlreadyExistsError too
                done = exc
            results[i] = done
    return [result for result in results if result is not None]


async def _upsert_all(
    store: PostgreSQLStore, sql: TableSQL, batch: list[WriteOp]
) -> list[WriteResult]:
    # A key written twice: the later write is what the row ends with; the earlier one
    # took effect just before it, so its caller's version is still its own.
    versions = new_versions(len(batch))
    last = {op.key: i for i, op in enumerate(batch)}
    keys = sorted(last)
    rows = [last[key] for key in keys]
    datas = [batch[i].data or b"" for i in rows]
    opaque = [key for key, data in zip(keys, datas, strict=True) if ops.holds_nul(data)]
    async with store.batch_call("save_many", 1) as call:
        await call.conn.execute(
            sql.save_many,
            keys,
            [data.decode("utf-8") for data in datas],
            [versions[i] for i in rows],
            batch[0].ttl,
            opaque,
            timeout=call.remaining(),
        )
    return list(versions)
