# Identifiers are allow-listed and quoted; values are always bound parameters.
# ruff: noqa: S608
"""Creating the schema, the bookkeeping tables and the namespace tables, race-free.

Several processes may start at once against an empty database. All DDL runs in a
transaction that first takes ``pg_advisory_xact_lock`` on a key derived from the schema
name, so exactly one of them creates things and the others find them made. A quick check
without the lock comes first, so a warm start takes no lock at all.

``polystore_meta`` records the layout version (``schema_version``) for later migrations;
``polystore_namespaces`` maps each namespace to its table, so two namespaces can never
share one and the sweeper finds every table.
"""

from __future__ import annotations

from typing import Any

from polystore import ConfigurationError
from polystore_postgres.naming import advisory_lock_key, quote_identifier, table_for_namespace
from polystore_postgres.partitions import Partitioning
from polystore_postgres.sql import table_ddl

__all__ = ["SCHEMA_VERSION", "ensure_namespace", "ensure_schema", "list_tables"]

SCHEMA_VERSION = 1
"""The table layout this package writes; recorded in ``polystore_meta``."""


def _meta(schema: str) -> str:
    return f"{quote_identifier(schema)}.polystore_meta"


def _namespaces(schema: str) -> str:
    return f"{quote_identifier(schema)}.polystore_namespaces"


async def ensure_schema(conn: Any, schema: str) -> None:
    """Create the schema and bookkeeping tables if needed; check the layout version.

    Raises:
        ConfigurationError: The schema was written by a newer, incompatible layout, or
            the database does not use UTF-8.
    """
    encoding = await conn.fetchval("SELECT current_setting('server_encoding')")
    if encoding != "UTF8":
        raise ConfigurationError(
            f"the database encoding is {encoding}; polystore-postgres needs UTF8"
        )
    version = await _recorded_version(conn, schema)
    if version is None:
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", advisory_lock_key(schema))
            await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {quote_identifier(schema)}")
            await conn.execute(
                f"CREATE TABLE IF NOT EXISTS {_meta(schema)} "
                "(name text PRIMARY KEY, value text NOT NULL)"
            )
            await conn.execute(
                f"CREATE TABLE IF NOT EXISTS {_namespaces(schema)} ("
                "namespace text PRIMARY KEY, table_name text NOT NULL UNIQUE, "
                "created_at timestamptz NOT NULL DEFAULT now())"
            )
            await conn.execute(
                f"INSERT INTO {_meta(schema)} (name, value) VALUES ('schema_version', $1) "
                "ON CONFLICT (name) DO NOTHING",
                str(SCHEMA_VERSION),
            )
        version = await _recorded_version(conn, schema)
    if version is not None and version > SCHEMA_VERSION:
        raise ConfigurationError(
            f"schema {schema!r} has layout version {version}, newer than the "
            f"{SCHEMA_VERSION} this polystore-postgres understands; upgrade the package"
        )


async def _recorded_version(conn: Any, schema: str) -> int | None:
    exists = await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", _meta(schema))
    if not exists:
        return None
    value = await conn.fetchval(f"SELECT value FROM {_meta(schema)} WHERE name = 'schema_version'")
    return None if value is None else int(value)


async def ensure_namespace(
    conn: Any,
    schema: str,
    namespace: str,
    *,
    query_index: bool,
    partitioning: Partitioning | None = None,
) -> str:
    """Create the table of ``namespace`` if needed and return its name.

    Raises:
        ConfigurationError: Another namespace already owns the table name.
    """
    table = table_for_namespace(namespace)
    owner = await _owner(conn, schema, table)
    qualified = f"{quote_identifier(schema)}.{quote_identifier(table)}"
    ready = owner is not None and await conn.fetchval(
        "SELECT to_regclass($1) IS NOT NULL", qualified
    )
    if not ready:
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", advisory_lock_key(schema))
            ddl = table_ddl(schema, table, query_index=query_index, partitioning=partitioning)
            for statement in ddl:
                await conn.execute(statement)
            await conn.execute(
                f"INSERT INTO {_namespaces(schema)} (namespace, table_name) VALUES ($1, $2) "
                "ON CONFLICT DO NOTHING",
                namespace,
                table,
            )
        owner = await _owner(conn, schema, table)
    if owner != namespace:
        raise ConfigurationError(
            f"table {table!r} in schema {schema!r} belongs to namespace {owner!r}, "
            f"not {namespace!r}"
        )
    return table


async def _owner(conn: Any, schema: str, table: str) -> str | None:
    owner: str | None = await conn.fetchval(
        f"SELECT namespace FROM {_namespaces(schema)} WHERE table_name = $1", table
    )
    return owner


async def list_tables(conn: Any, schema: str) -> list[str]:
    """The tables of every namespace recorded in ``schema``."""
    rows = await conn.fetch(f"SELECT table_name FROM {_namespaces(schema)} ORDER BY table_name")
    return [row[0] for row in rows]
