"""SQL text of the ``sqlite`` backend; values are always bound parameters."""

from __future__ import annotations

from polystore.spi import Scalar

TABLE = "polystore_kv"
SCHEMA_VERSION = 1

SCHEMA = [
    f"""CREATE TABLE IF NOT EXISTS {TABLE} (
        ns TEXT NOT NULL,
        key TEXT NOT NULL,
        value TEXT NOT NULL,
        version TEXT NOT NULL,
        expires_at REAL,
        updated_at REAL NOT NULL,
        PRIMARY KEY (ns, key)
    ) WITHOUT ROWID""",
    f"CREATE INDEX IF NOT EXISTS {TABLE}_expiry ON {TABLE} (expires_at) "
    "WHERE expires_at IS NOT NULL",
    "CREATE TABLE IF NOT EXISTS polystore_meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "INSERT OR IGNORE INTO polystore_meta (name, value) "
    f"VALUES ('schema_version', '{SCHEMA_VERSION}')",
]

LIVE = "(expires_at IS NULL OR expires_at > ?)"

GET_ENTRY = f"SELECT value, version, expires_at FROM {TABLE} WHERE ns = ? AND key = ? AND {LIVE}"
GET_VALUE = f"SELECT value FROM {TABLE} WHERE ns = ? AND key = ? AND {LIVE}"
EXISTS = f"SELECT 1 FROM {TABLE} WHERE ns = ? AND key = ? AND {LIVE}"

_COLUMNS = "(ns, key, value, version, expires_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)"
_SET = (
    "value = excluded.value, version = excluded.version, "
    "expires_at = excluded.expires_at, updated_at = excluded.updated_at"
)
UPSERT = f"INSERT INTO {TABLE} {_COLUMNS} ON CONFLICT (ns, key) DO UPDATE SET {_SET}"
# Create-only: insert, or take over a row that has expired; RETURNING tells which.
INSERT_IF_ABSENT = (
    f"INSERT INTO {TABLE} {_COLUMNS} ON CONFLICT (ns, key) DO UPDATE SET {_SET} "
    f"WHERE {TABLE}.expires_at IS NOT NULL AND {TABLE}.expires_at <= ? RETURNING version"
)
UPDATE_IF_VERSION = (
    f"UPDATE {TABLE} SET value = ?, version = ?, expires_at = ?, updated_at = ? "
    f"WHERE ns = ? AND key = ? AND version = ? AND {LIVE} RETURNING version"
)
DELETE = f"DELETE FROM {TABLE} WHERE ns = ? AND key = ? RETURNING expires_at"
DELETE_IF_VERSION = (
    f"DELETE FROM {TABLE} WHERE ns = ? AND key = ? AND version = ? AND {LIVE} RETURNING 1"
)
SCAN_FIRST = f"SELECT key FROM {TABLE} WHERE ns = ? AND key >= ? AND {LIVE} ORDER BY key LIMIT ?"
SCAN_NEXT = f"SELECT key FROM {TABLE} WHERE ns = ? AND key > ? AND {LIVE} ORDER BY key LIMIT ?"
REAP = (
    f"DELETE FROM {TABLE} WHERE (ns, key) IN (SELECT ns, key FROM {TABLE} "
    "WHERE expires_at IS NOT NULL AND expires_at <= ? LIMIT ?)"
)

MAX_PARAMS = 900
"""Keys per ``IN (...)`` list: well under SQLite's bound-parameter limit."""


def get_many_sql(count: int) -> str:
    marks = ",".join("?" * count)
    return f"SELECT key, value FROM {TABLE} WHERE ns = ? AND {LIVE} AND key IN ({marks})"


def get_entries_sql(count: int) -> str:
    marks = ",".join("?" * count)
    return (
        f"SELECT key, value, version, expires_at FROM {TABLE} "
        f"WHERE ns = ? AND {LIVE} AND key IN ({marks})"
    )


def delete_many_sql(count: int) -> str:
    marks = ",".join("?" * count)
    return f"DELETE FROM {TABLE} WHERE ns = ? AND key IN ({marks}) RETURNING expires_at"


_INT64 = range(-(2**63), 2**63)


def _json_path(field: str) -> str | None:
    if '"' in field or "\\" in field:
        return None
    return f'$."{field}"'


def find_sql(where: dict[str, Scalar], now: float, ns: str) -> tuple[str, list[object]]:
    """Build a ``find`` query, in key order, selecting a superset of the matches.

    The caller re-checks every row (``json_extract`` cuts a string at NUL, so such a
    string cannot be compared in SQL) and applies the limit after that check.
    """
    clauses = ["ns = ?", LIVE, "json_type(value) = 'object'"]
    params: list[object] = [ns, now]
    for field, expected in where.items():
        path = _json_path(field)
        if path is None:
            continue
        if expected is None:
            clauses.append("json_type(value, ?) = 'null'")
            params.append(path)
        elif isinstance(expected, bool):
            clauses.append("json_type(value, ?) = ?")
            params += [path, "true" if expected else "false"]
        elif isinstance(expected, (int, float)):
            if isinstance(expected, int) and expected not in _INT64:
                # SQLite binds 64-bit integers only; the re-check compares this one.
                clauses.append("json_type(value, ?) IN ('integer', 'real')")
                params.append(path)
                continue
            clauses.append(
                "json_type(value, ?) IN ('integer', 'real') AND json_extract(value, ?) = ?"
            )
            params += [path, path, expected]
        elif "\x00" in expected:
            clauses.append("json_type(value, ?) = 'text'")
            params.append(path)
        else:
            clauses.append("json_type(value, ?) = 'text' AND json_extract(value, ?) = ?")
            params += [path, path, expected]
    sql = (
        f"SELECT key, value, version, expires_at FROM {TABLE} WHERE "
        + " AND ".join(clauses)
        + " ORDER BY key"
    )
    return sql, params
