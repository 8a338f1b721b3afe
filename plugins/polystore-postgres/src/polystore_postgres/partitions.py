# Identifiers are allow-listed and quoted; values are always bound parameters or
# literals built from validated integers and dates.
"""Declarative partitioning of namespace tables: by hash of the key, or by month.

``partitioning = { by = "hash", partitions = 8 }`` makes each new namespace table
``PARTITION BY HASH (key)`` with ``partitions`` parts ``FOR VALUES WITH (MODULUS n,
REMAINDER i)``. Every behaviour is unchanged (the primary key is the partition key); a
key lookup reads one part (partition pruning), and vacuum, reindex and the find index
work part by part.

``partitioning = { by = "range", ahead = 3, keep = 12 }`` is for append-only namespaces
whose keys start with the time they were made (``2026-12-01T10:15:00Z/payment-17``): the
table is ``PARTITION BY RANGE (key)``, one part per month (``FOR VALUES FROM ('2026-12')
TO ('2027-01')``). PostgreSQL requires every unique key of a partitioned table to hold
the partition columns; partitioning on the key itself keeps the key unique across every
part, so compare-and-set and create-only writes keep their meaning. The price is the
rule on keys: a key written to such a namespace must start with ``YYYY-MM``
(a :class:`~polystore.errors.ValidationError` otherwise, before any I/O), and its month
must have a part: :func:`maintain` (``polystore maintain``) creates the parts of the
current month and ``ahead`` months after it, and detaches parts older than ``keep``
months, leaving them as plain tables to archive or drop.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from polystore import ValidationError
from polystore_postgres.naming import quote_identifier

__all__ = [
    "MONTH_KEY",
    "MaintenanceReport",
    "Partitioning",
    "check_range_key",
    "maintain_table",
    "partition_ddl",
]

MONTH_KEY = re.compile(r"\d{4}-(0[1-9]|1[0-2])")
"""What a key of a range-partitioned namespace starts with: its year and month."""


class Partitioning(BaseModel):
    """How new namespace tables are partitioned (configuration key ``partitioning``).

    Attributes:
        by: ``"hash"`` (by key, into ``partitions`` parts) or ``"range"`` (by month, for
            keys that start with ``YYYY-MM``).
        partitions: Parts of a hash-partitioned table.
        ahead: Months after the current one whose parts exist (range).
        keep: Months before the current one whose parts stay attached; older parts are
            detached by ``polystore maintain``. ``None`` keeps every part (range).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    by: Literal["hash", "range"]
    partitions: int = Field(default=8, ge=2, le=1024)
    ahead: int = Field(default=3, ge=0, le=120)
    keep: int | None = Field(default=None, ge=0, le=1200)

    @model_validator(mode="after")
    def _options_fit_the_kind(self) -> Partitioning:
        given = self.model_fields_set
        if self.by == "hash" and given & {"ahead", "keep"}:
            raise ValueError("ahead and keep apply to by = 'range'")
        if self.by == "range" and "partitions" in given:
            raise ValueError("partitions applies to by = 'hash'; range parts are months")
        return self


def check_range_key(key: str, store_name: str) -> None:
    """Refuse a key that cannot go to a month part.

    Raises:
        ValidationError: ``key`` does not start with ``YYYY-MM``.
    """
    if MONTH_KEY.match(key) is None:
        raise ValidationError(
            "this namespace is partitioned by month: keys must start with YYYY-MM "
            "(e.g. '2026-12-01T10:15:00Z/payment-17')",
            backend=store_name,
            key=key,
        )


def _month(day: dt.date, offset: int) -> dt.date:
    index = day.year * 12 + day.month - 1 + offset
    return dt.date(index // 12, index % 12 + 1, 1)


def _part_name(table: str, month: dt.date) -> str:
    return f"{table}_{month:%Y%m}"


def partition_ddl(
    schema: str, table: str, partitioning: Partitioning, today: dt.date
) -> tuple[str, list[str]]:
    """The ``PARTITION BY`` clause of a new table, and the statements creating its parts."""
    qualified = f"{quote_identifier(schema)}.{quote_identifier(table)}"
    if partitioning.by == "hash":
        n = partitioning.partitions
        parts = [
            f"CREATE TABLE IF NOT EXISTS {quote_identifier(schema)}."
            f"{quote_identifier(f'{table}_h{i}')} PARTITION OF {qualified} "
            f"FOR VALUES WITH (MODULUS {n}, REMAINDER {i})"
            for i in range(n)
        ]
        return " PARTITION BY HASH (key)", parts
    months = [_month(today, offset) for offset in range(partitioning.ahead + 1)]
    return " PARTITION BY RANGE (key)", [_month_ddl(schema, table, m) for m in months]


def _month_ddl(schema: str, table: str, month: dt.date) -> str:
    following = _month(month, 1)
    return (
        f"CREATE TABLE IF NOT EXISTS {quote_identifier(schema)}."
        f"{quote_identifier(_part_name(table, month))} PARTITION OF "
        f"{quote_identifier(schema)}.{quote_identifier(table)} "
        f"FOR VALUES FROM ('{month:%Y-%m}') TO ('{following:%Y-%m}')"
    )


@dataclass
class MaintenanceReport:
    """What one :func:`maintain` pass did.

    Attributes:
        created: Month parts created (qualified names).
        detached: Month parts detached, left as plain tables.
    """

    created: list[str] = field(default_factory=list)
    detached: list[str] = field(default_factory=list)


_PARTS = """
SELECT c.relname FROM pg_inherits i
JOIN pg_class c ON c.oid = i.inhrelid
WHERE i.inhparent = to_regclass($1)
ORDER BY c.relname
"""


async def maintain_table(
    conn: Any, schema: str, table: str, partitioning: Partitioning, today: dt.date
) -> MaintenanceReport:
    """Create the month parts due and detach the expired ones of one range-partitioned table.

    Idempotent: a second pass on the same day does nothing.
    """
    report = MaintenanceReport()
    qualified = f"{quote_identifier(schema)}.{quote_identifier(table)}"
    existing = {row[0] for row in await conn.fetch(_PARTS, qualified)}
    for offset in range(partitioning.ahead + 1):
        month = _month(today, offset)
        name = _part_name(table, month)
        if name not in existing:
            await conn.execute(_month_ddl(schema, table, month))
            report.created.append(f"{schema}.{name}")
    if partitioning.keep is not None:
        oldest = f"{table}_{_month(today, -partitioning.keep):%Y%m}"
        pattern = re.compile(re.escape(table) + r"_\d{6}")
        for name in sorted(existing):
            if pattern.fullmatch(name) and name < oldest:
                await conn.execute(
                    f"ALTER TABLE {qualified} DETACH PARTITION "
                    f"{quote_identifier(schema)}.{quote_identifier(name)}"
                )
                report.detached.append(f"{schema}.{name}")
    return report
