# Identifiers are allow-listed and quoted; values are always bound parameters.
# ruff: noqa: S608
"""SQL text of one namespace table. Identifiers are allow-listed and quoted; values are
always bound parameters.

Table layout (one table per namespace)::

    key         text COLLATE "C" PRIMARY KEY   -- byte order: prefix ranges are contiguous
    value       json NOT NULL                  -- the exact JSON text the codec wrote
    version     text NOT NULL                  -- random 64-bit token, written with the value
    expires_at  timestamptz                    -- NULL: never expires
    shape       smallint NOT NULL              -- 0 not an object, 1 object, 2 object jsonb
                                               --   cannot hold (a \\u0000 in a string)
    created_at, updated_at timestamptz

``value`` is ``json``, not ``jsonb``: jsonb normalises numbers (``1e16`` comes back as an
integer, ``-0.0`` as ``0.0``) and key order. ``find`` casts to jsonb instead, served by a
partial GIN index (``jsonb_path_ops``) on :data:`DOCUMENT` over the rows with
``shape = 1``. Only ``value`` changes on an overwrite, so until that index exists
overwrites are HOT updates that touch no index at all.
"""

from __future__ import annotations

import datetime as dt

from polystore_postgres.naming import check_identifier, quote_identifier
from polystore_postgres.partitions import Partitioning, partition_ddl

__all__ = ["DOCUMENT", "LIVE", "TableSQL", "query_index_ddl", "table_ddl"]

LIVE = "(expires_at IS NULL OR expires_at > now())"
"""Every read filters on this: an expired row is never returned, reaped or not."""

DOCUMENT = "(CASE WHEN shape = 1 THEN value::jsonb END)"
"""The jsonb form of a row, for ``find``. The CASE keeps the cast away from rows jsonb
cannot hold: PostgreSQL may evaluate the parts of an AND in any order (a bitmap heap
scan's recheck puts the index condition first), but not the branches of a CASE."""

_EXPIRY = "now() + {ttl}::float8 * interval '1 second'"
_SHAPE = "CASE WHEN left({text}, 1) <> '{{' THEN 0 WHEN {opaque} THEN 2 ELSE 1 END"
"""The ``shape`` of a row: the server tells objects from other values by the first
character (the codec writes no leading space); the client flags the texts that hold
``\\u0000`` (see :func:`polystore_postgres.ops.holds_nul`), which are rare: looking for
them in Python costs a fraction of what ``strpos`` costs the server."""
_SET = (
    "value = excluded.value, version = excluded.version, expires_at = excluded.expires_at, "
    "shape = excluded.shape, updated_at = now()"
)
_RENEW_CREATED = "created_at = CASE WHEN t.expires_at <= now() THEN now() ELSE t.created_at END"


def table_ddl(
    schema: str,
    table: str,
    *,
    query_index: bool,
    partitioning: Partitioning | None = None,
    today: dt.date | None = None,
) -> list[str]:
    """Statements creating one namespace table and its indexes (idempotent).

    With ``query_index`` the GIN index that serves ``find`` is created with the table;
    otherwise it is built later, concurrently, on the namespace's first ``find``. With
    ``partitioning`` the table is partitioned and its first parts are created (the
    months from ``today`` on, for range partitioning).
    """
    clause = ""
    parts: list[str] = []
    if partitioning is not None:
        clause, parts = partition_ddl(
            schema, table, partitioning, today or dt.datetime.now(dt.timezone.utc).date()
        )
    qualified = f"{quote_identifier(schema)}.{quote_identifier(table)}"
    statements = [
        f"""CREATE TABLE IF NOT EXISTS {qualified} (
            key text COLLATE "C" PRIMARY KEY,
            value json NOT NULL,
            version text NOT NULL,
            expires_at timestamptz,
            shape smallint NOT NULL DEFAULT 0,
            created_at timestamptz NOT NULL DEFAULT now(),
            updated_at timestamptz NOT NULL DEFAULT now()
        ){clause}""",
        *parts,
        f"CREATE INDEX IF NOT EXISTS {quote_identifier(table + '_exp')} ON {qualified} "
        "(expires_at) WHERE expires_at IS NOT NULL",
        f"CREATE INDEX IF NOT EXISTS {quote_identifier(table + '_opq')} ON {qualified} "
        "(key) WHERE shape = 2",
    ]
    if query_index:
        statements.append(query_index_ddl(schema, table, concurrently=False))
    return statements


def query_index_ddl(schema: str, table: str, *, concurrently: bool) -> str:
    """``CREATE INDEX`` of the GIN index serving ``find`` (jsonb containment)."""
    how = "CONCURRENTLY " if concurrently else ""
    return (
        f"CREATE INDEX {how}IF NOT EXISTS {quote_identifier(table + '_doc')} "
        f"ON {quote_identifier(schema)}.{quote_identifier(table)} "
        f"USING gin ({DOCUMENT} jsonb_path_ops) WHERE shape = 1"
    )


class TableSQL:
    """Every statement a store runs against its table, built once per namespace.

    Parameters of the writes: ``$1`` key, ``$2`` JSON text, ``$3`` new version,
    ``$4`` ttl in seconds (NULL: no expiry), ``$5`` whether the text holds ``\\u0000``;
    CAS adds ``$6`` the expected version. ``save_many`` takes arrays of keys, texts and
    versions as ``$1``-``$3`` and, as ``$5``, the keys whose text holds ``\\u0000``.
    """

    def __init__(self, schema: str, table: str) -> None:
        self.schema = check_identifier(schema, what="schema")
        self.table = check_identifier(table, what="table name")
        t = f"{quote_identifier(schema)}.{quote_identifier(table)}"
        expiry = _EXPIRY.format(ttl="$4")
        columns = "(key, value, version, expires_at, shape)"
        shape = _SHAPE.format(text="$2::text", opaque="$5::bool")
        values = f"VALUES ($1, $2::text::json, $3, {expiry}, {shape})"
        self.qualified = t
        self.query_index = f"{quote_identifier(schema)}.{quote_identifier(table + '_doc')}"
        self.get_value = f"SELECT value FROM {t} WHERE key = $1 AND {LIVE}"
        self.get_entry = f"SELECT value, version, expires_at FROM {t} WHERE key = $1 AND {LIVE}"
        self.exists = f"SELECT 1 FROM {t} WHERE key = $1 AND {LIVE}"
        self.upsert = (
            f"INSERT INTO {t} AS t {columns} {values} "
            f"ON CONFLICT (key) DO UPDATE SET {_SET}, {_RENEW_CREATED}"
        )
        # Create-only: insert, or take over a row that has expired; RETURNING says which.
        self.insert_if_absent = (
            f"INSERT INTO {t} AS t {columns} {values} "
            f"ON CONFLICT (key) DO UPDATE SET {_SET}, created_at = now() "
            "WHERE t.expires_at IS NOT NULL AND t.expires_at <= now() RETURNING 1"
        )
        self.update_if_version = (
            f"UPDATE {t} SET value = $2::text::json, version = $3, expires_at = {expiry}, "
            f"shape = {shape}, updated_at = now() "
            f"WHERE key = $1 AND version = $6 AND {LIVE} RETURNING 1"
        )
        self.delete = f"DELETE FROM {t} WHERE key = $1 RETURNING {LIVE}"
        self.delete_if_version = (
            f"DELETE FROM {t} WHERE key = $1 AND version = $2 AND {LIVE} RETURNING 1"
        )
        self.get_many = f"SELECT key, value FROM {t} WHERE key = ANY($1::text[]) AND {LIVE}"
        self.save_many = (
            f"INSERT INTO {t} AS t {columns} "
            f"SELECT u.k, u.v::json, u.ver, {expiry}, "
            f"{_SHAPE.format(text='u.v', opaque='u.k = ANY($5::text[])')} "
            "FROM unnest($1::text[], $2::text[], $3::text[]) AS u(k, v, ver) "
            f"ON CONFLICT (key) DO UPDATE SET {_SET}, {_RENEW_CREATED}"
        )
        self.delete_many = f"DELETE FROM {t} WHERE key = ANY($1::text[]) RETURNING {LIVE}"
        scan = f"SELECT key FROM {t} WHERE {LIVE} AND "
        self.scan_first = scan + "key >= $1 ORDER BY key LIMIT $2"
        self.scan_next = scan + "key > $1 ORDER BY key LIMIT $2"
        self.scan_range_first = scan + "key >= $1 AND key < $3 ORDER BY key LIMIT $2"
        self.scan_range_next = scan + "key > $1 AND key < $3 ORDER BY key LIMIT $2"
        find = (
            f"SELECT key, value, version, expires_at FROM {t} "
            f"WHERE ((shape = 1 AND {DOCUMENT} @> $1::jsonb) OR shape = 2) AND {LIVE}"
        )
        self.find_all = find + " ORDER BY key"
        self.find_page = find + " AND key > $2 ORDER BY key LIMIT $3"
        self.reap = (
            f"DELETE FROM {t} WHERE key IN (SELECT key FROM {t} WHERE expires_at <= now() "
            "ORDER BY expires_at LIMIT $1 FOR UPDATE SKIP LOCKED) AND expires_at <= now()"
        )
