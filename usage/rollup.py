"""The rollup rule, written once: which record adds what to which hourly counter.

Three places apply it and all three are built from the definitions below, never
written out by hand: the portable write path (``fold``, then one UPSERT), the
PostgreSQL write path (the aggregates of its single INSERT statement, ``sql_aggregate``)
and ``check_rollups``' recomputation from the raw records (``orm_aggregates``).

A record's bucket is ``(project, key slot, model, UTC hour)`` in ``UsageHourly`` and
``(project, key slot, model, local day)`` in ``UsageDaily`` (the ``GRAINS``: one rule, two
bucket sizes, written by the same statement), the local day being the record's calendar
day in its organization's daily-rollup timezone (``UsageDailyZone``: the billing timezone,
``usage.daily``); the key slot is the API key id, or 0 for a record without a key (and for
one whose key was deleted).

"Is an error", "is unpriced", "is incomplete" and "is an incomplete error" are the
conditions a counter may count by. An *incomplete* call (a stream cut short or stopped)
is an error only when it carries an error type; the pages show incomplete calls apart
(``incomplete`` and ``incomplete_errors``, so they never read raw records for them).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, tzinfo
from decimal import Decimal
from typing import Any

from django.db.models import Aggregate, Count, Q, Sum
from django.db.models.functions import Coalesce, TruncDate, TruncHour

ERROR_STATUSES = ("error", "failed")
INCOMPLETE = "incomplete"
NO_KEY_SLOT = 0


@dataclass(frozen=True)
class Condition:
    """One condition on a record, in the three forms its users need, side by side."""

    name: str
    holds: Callable[[dict], bool]  # on a record's column values (the write path's row)
    sql: str  # on the columns of the PostgreSQL statement's inserted rows
    q: Callable[[], Q]  # on UsageRecord (the recomputation, the usage page)
    columns: tuple[str, ...]  # the record columns it reads


def _sql_list(values: Iterable[str]) -> str:
    return ", ".join("'" + v.replace("'", "''") + "'" for v in values)


IS_ERROR = Condition(
    name="error",
    holds=lambda r: bool(r["error_type"]) or r["status"] in ERROR_STATUSES,
    sql=f"error_type <> '' OR status IN ({_sql_list(ERROR_STATUSES)})",
    q=lambda: ~Q(error_type="") | Q(status__in=ERROR_STATUSES),
    columns=("error_type", "status"),
)
IS_UNPRICED = Condition(
    name="unpriced",
    holds=lambda r: r["cost"] is None,
    sql="cost IS NULL",
    q=lambda: Q(cost__isnull=True),
    columns=("cost",),
)


IS_INCOMPLETE = Condition(
    name="incomplete",
    holds=lambda r: r["status"] == INCOMPLETE,
    sql=f"status = '{INCOMPLETE}'",
    q=lambda: Q(status=INCOMPLETE),
    columns=("status",),
)
# An incomplete call the error counter counts too (one with an error type): the pages
# show incomplete calls apart, so they take these back out of the errors.
IS_INCOMPLETE_ERROR = Condition(
    name="incomplete error",
    holds=lambda r: IS_INCOMPLETE.holds(r) and IS_ERROR.holds(r),
    sql=f"{IS_INCOMPLETE.sql} AND ({IS_ERROR.sql})",
    q=lambda: IS_INCOMPLETE.q() & IS_ERROR.q(),
    columns=("status", "error_type"),
)


def is_error(*, status: str, error_type: str) -> bool:
    """Whether a record with this status and error type counts among the errors."""
    return IS_ERROR.holds({"status": status, "error_type": error_type})


def incomplete_q() -> Q:
    """Records of calls cut short (shown as their own figure on the usage page)."""
    return IS_INCOMPLETE.q()


@dataclass(frozen=True)
class Counter:
    """One column of ``UsageHourly``: the sum of a record column, or a count of records
    (of those meeting ``only``, when given)."""

    name: str
    column: str | None = None
    only: Condition | None = None

    def contribution(self, row: dict) -> Any:
        if self.column is not None:
            value = row[self.column]
            return 0 if value is None else value  # an unpriced record adds no cost
        return int(self.only is None or self.only.holds(row))

    def sql_aggregate(self) -> str:
        if self.column is not None:
            return f"COALESCE(sum({self.column}), 0)"
        return "count(*)" if self.only is None else f"count(*) FILTER (WHERE {self.only.sql})"

    def orm_aggregate(self) -> Aggregate:
        if self.column is not None:
            return Coalesce(Sum(self.column), 0) if self.column != "cost" else Sum(self.column)
        return Count("pk") if self.only is None else Count("pk", filter=self.only.q())


COUNTERS: tuple[Counter, ...] = (
    Counter("requests"),
    Counter("errors", only=IS_ERROR),
    Counter("input_tokens", column="input_tokens"),
    Counter("cached_input_tokens", column="cached_input_tokens"),
    Counter("output_tokens", column="output_tokens"),
    Counter("reasoning_tokens", column="reasoning_tokens"),
    Counter("total_tokens", column="total_tokens"),
    Counter("cost", column="cost"),
    Counter("unpriced_requests", only=IS_UNPRICED),
    Counter("incomplete", only=IS_INCOMPLETE),
    Counter("incomplete_errors", only=IS_INCOMPLETE_ERROR),
)
COUNTER_NAMES: tuple[str, ...] = tuple(c.name for c in COUNTERS)
COST = COUNTER_NAMES.index("cost")

# The record columns a bucket's key is made of, then those the counters read.
BUCKET_COLUMNS = ("organization_id", "project_id", "api_key_id", "model", "occurred_at")
SOURCE_COLUMNS: tuple[str, ...] = BUCKET_COLUMNS + tuple(
    dict.fromkeys(
        col
        for c in COUNTERS
        for col in ((c.column,) if c.column else ()) + (c.only.columns if c.only else ())
    )
)


def hour_of(when: datetime) -> datetime:
    """The UTC hour a time falls in (the bucket's hour)."""
    return when.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def day_of(when: datetime, zone: tzinfo = UTC) -> date:
    """The calendar day a time falls in, in ``zone`` (the daily bucket's day)."""
    return when.astimezone(zone).date()


@dataclass(frozen=True)
class Grain:
    """One bucket size of the rollups: its table's bucket column and that column's value
    for a record, in the three forms its users need (Python, PostgreSQL, ORM).

    A ``zoned`` grain's bucket depends on the organization's daily-rollup timezone: its
    ``sql`` has one ``%s`` parameter, the zone's name, and ``of``/``trunc`` take the zone."""

    name: str
    column: str  # the bucket column of the rollup table (and its unique key's last part)
    of: Callable[[datetime, tzinfo], Any]  # on a record's occurred_at (portable write path)
    sql: str  # on occurred_at in the PostgreSQL statement
    trunc: Callable[[str, tzinfo], Any]  # ORM expression on UsageRecord (the recomputation)
    zoned: bool = False


HOUR = Grain(
    name="hour",
    column="hour",
    of=lambda when, _zone: hour_of(when),
    sql="date_trunc('hour', occurred_at, 'UTC')",
    trunc=lambda field, _zone: TruncHour(field, tzinfo=UTC),
)
DAY = Grain(
    name="day",
    column="day",
    of=day_of,
    sql="(occurred_at AT TIME ZONE %s::text)::date",
    trunc=lambda field, zone: TruncDate(field, tzinfo=zone),
    zoned=True,
)
# Every rollup the write path keeps in step with the records, hourly first (lock order).
GRAINS: tuple[Grain, ...] = (HOUR, DAY)


def bucket_key(row: dict, grain: Grain = HOUR, zone: tzinfo = UTC) -> tuple:
    """``(project_id, key_slot, model, hour or day)``: the rollup's unique key, in lock order
    (``zone``: the organization's daily-rollup timezone, for a zoned grain)."""
    return (
        row["project_id"],
        row["api_key_id"] or NO_KEY_SLOT,
        row["model"],
        grain.of(row["occurred_at"], zone),
    )


def zero() -> list:
    """A bucket's counters before any record (cost as an exact Decimal)."""
    return [Decimal(0) if c.name == "cost" else 0 for c in COUNTERS]


def fold(
    rows: Iterable[dict], grain: Grain = HOUR, zone: tzinfo = UTC
) -> dict[tuple, tuple[int, list]]:
    """Buckets of these records: key -> (organization id, counters in ``COUNTERS`` order).

    Costs are quantized to the money unit, so the Decimal sums are exact. ``zone``: the
    daily-rollup timezone of the records' organization (one organization per call).
    """
    buckets: dict[tuple, tuple[int, list]] = {}
    for r in rows:
        key = bucket_key(r, grain, zone)
        entry = buckets.get(key)
        if entry is None:
            entry = buckets[key] = (r["organization_id"], zero())
        numbers = entry[1]
        for i, counter in enumerate(COUNTERS):
            numbers[i] += counter.contribution(r)
    return buckets


def orm_aggregates(prefix: str = "s_") -> dict[str, Aggregate]:
    """The counters as ORM aggregates over UsageRecord, named ``<prefix><counter>``."""
    return {f"{prefix}{c.name}": c.orm_aggregate() for c in COUNTERS}
