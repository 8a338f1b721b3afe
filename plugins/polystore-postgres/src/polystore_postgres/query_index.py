"""Building the GIN index that serves ``find``, concurrently, once per namespace.

Under the default ``query_index="auto"`` a namespace's first ``find`` starts the build in
the background (``CREATE INDEX CONCURRENTLY``, so writers are never blocked) and is
answered by a scan meanwhile; later calls use the index. A session advisory lock makes
one process build while the others wait their turn; an invalid index left by an
interrupted build is dropped and built again.
"""

from __future__ import annotations

from typing import Any

from polystore_postgres.naming import advisory_lock_key
from polystore_postgres.sql import TableSQL, query_index_ddl

__all__ = ["build_query_index", "query_index_state"]


async def query_index_state(conn: Any, sql: TableSQL) -> bool | None:
    """``True`` if the index exists and is valid, ``False`` if invalid, ``None`` if absent."""
    valid: bool | None = await conn.fetchval(
        "SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass($1)", sql.query_index
    )
    return valid


async def build_query_index(conn: Any, sql: TableSQL) -> bool:
    """Make sure the index exists; return whether it is ready.

    Returns ``False`` without waiting when another session holds the build lock.
    The statement runs without ``statement_timeout``: a build on a big table takes
    as long as it takes.
    """
    if await query_index_state(conn, sql):
        return True
    key = advisory_lock_key(f"{sql.schema}.{sql.table}:doc")
    if not await conn.fetchval("SELECT pg_try_advisory_lock($1)", key):
        return False
    try:
        state = await query_index_state(conn, sql)
        if state:
            return True
        if state is False:  # left invalid by an interrupted build
            await conn.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {sql.query_index}")
        # A partitioned table cannot build an index concurrently; its parts are built
        # one after the other, each locking writes of its own part only.
        partitioned = await conn.fetchval(
            "SELECT relkind = 'p' FROM pg_class WHERE oid = to_regclass($1)", sql.qualified
        )
        await conn.execute("SET statement_timeout = 0")
        try:
            ddl = query_index_ddl(sql.schema, sql.table, concurrently=not partitioned)
            await conn.execute(ddl)
        finally:
            await conn.execute("RESET statement_timeout")
        return bool(await query_index_state(conn, sql))
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", key)
