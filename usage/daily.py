"""Reading the daily rollups: a range, or its days in a billing timezone, assembled
exactly from ``UsageDaily`` and the hourly rollups of the hours they differ by.

The whole hours a range reads from the rollups (``usage.selectors.rollup_window``: the
range's partial hours, and the hours a cut falls inside, come from the raw records) are
grouped by UTC day. A UTC day of which at least 12 whole hours fall in one group (one
local day of the range; the whole range when nothing groups by day) is read as one daily
row per project, key and model; the hours of that day outside the group are read from
the hourly rollups and *subtracted*, and the group's hours outside its UTC days added:

    New York (UTC-5), local day D = UTC [D 05:00, D+1 05:00)
                                  = daily(D) - hourly(D 00:00-05:00) + hourly(D+1 00:00-05:00)

so a 90-day chart reads at most 12 hourly rows per day, key and model instead of 24, and
none when the billing timezone is UTC. Every figure is an integer (costs in money units),
so the subtraction is exact. Daily and hourly rows are read by ONE statement (UNION ALL):
one snapshot, so a record committed meanwhile is in both or in neither.
"""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from django.db import connections
from django.db.models import Case, DateField, F, IntegerField, Q, Sum, Value, When
from django.db.models.functions import TruncDate

from . import rollup
from .fields import units_to_money
from .models import UsageDaily, UsageHourly

COUNTERS = rollup.COUNTER_NAMES
HOUR = timedelta(hours=1)
# A UTC day is read from the daily rollups when at least this many of its hours are in
# one group: then correcting it costs fewer hourly rows than reading its hours would.
MIN_HOURS = 12
# b_run of hourly rows grouped by UTC day (see rollup_rows), apart from run indexes.
BY_UTC_DAY = -1


@dataclass(frozen=True)
class DailyPlan:
    """Which rollup rows make the whole hours of a range, and where each one counts.

    ``days``: UTC day -> the group label its daily rows count for (None when the range is
    not grouped by day). ``hours``: UTC hour -> (sign, label) pairs: +1 for a group's hour
    outside its UTC days, -1 for an hour of a day read whole that is not in that group.
    """

    days: dict[date, date | None]
    hours: dict[datetime, tuple[tuple[int, date | None], ...]]

    @property
    def hourly_rows(self) -> int:
        return len(self.hours)


def _hour_ceil(when: datetime) -> datetime:
    floor = rollup.hour_of(when)
    return floor if floor == when else floor + HOUR


def whole_hours(*, start: datetime, end: datetime, cuts: Iterable[datetime] = ()) -> list[datetime]:
    """The whole UTC hours of [start, end) the rollups serve: without the partial hours at
    both ends and the hours a cut falls inside (``usage.selectors.rollup_window``)."""
    inner_start, inner_end = _hour_ceil(start), rollup.hour_of(end)
    split = {
        rollup.hour_of(c) for c in cuts if inner_start <= c < inner_end and c != rollup.hour_of(c)
    }
    hours = []
    hour = inner_start
    while hour < inner_end:
        if hour not in split:
            hours.append(hour)
        hour += HOUR
    return hours


def daily_plan(
    *,
    start: datetime,
    end: datetime,
    cuts: Iterable[datetime] = (),
    zone: ZoneInfo | None = None,
) -> DailyPlan:
    """The plan for [start, end); with ``zone``, grouped by local day in that timezone."""
    cuts = {c.astimezone(UTC) for c in cuts}
    hours = whole_hours(start=start, end=end, cuts=cuts)

    def label(hour: datetime) -> date | None:
        return hour.astimezone(zone).date() if zone is not None else None

    inside: dict[datetime, date | None] = {h: label(h) for h in hours}
    per_day: dict[date, Tally] = {}
    for h, lab in inside.items():
        per_day.setdefault(rollup.day_of(h), Tally())[lab] += 1
    days: dict[date, date | None] = {}
    for day, tally in per_day.items():
        lab, count = max(tally.items(), key=lambda item: (item[1], item[0] is None, item[0]))
        if count >= MIN_HOURS:
            days[day] = lab
    corrections: dict[datetime, list[tuple[int, date | None]]] = {}
    for h, lab in inside.items():
        day = rollup.day_of(h)
        if day not in days or days[day] != lab:
            corrections.setdefault(h, []).append((1, lab))
    for day, lab in days.items():
        first = datetime(day.year, day.month, day.day, tzinfo=UTC)
        for i in range(24):
            h = first + i * HOUR
            if h not in inside or inside[h] != lab:
                corrections.setdefault(h, []).append((-1, lab))
    return DailyPlan(days=days, hours={h: tuple(v) for h, v in sorted(corrections.items())})


def rollup_rows(
    *,
    scope: Q,
    start: datetime,
    end: datetime,
    columns: Mapping[str, object],
    day: str | None = None,
    zone: ZoneInfo | None = None,
    cuts: Iterable[datetime] = (),
) -> list[dict]:
    """The rollup counters of the whole hours of [start, end), grouped by ``columns``
    (name -> expression valid on both rollup tables: project_id, key_slot, model) and,
    with ``day`` (the group's name), by local day in ``zone``: rows of the shape
    ``{name: value, ..., "s_<counter>": sum}``, groups whose counters are all 0 left out.

    One query (daily UNION ALL hourly, the hourly rows summed per run of hours that count
    alike); the raw records of the partial hours are the caller's
    (``usage.selectors.rollup_window``'s ``edges``)."""
    plan = daily_plan(start=start, end=end, cuts=cuts, zone=zone if day else None)
    names = list(columns)
    sums = {f"s_{c}": Sum(c) for c in COUNTERS}
    # Consecutive hours that count the same way are one run, grouped by the database
    # (a run's id through CASE), so the hourly part returns a row per run, not per hour.
    runs: list[tuple[datetime, datetime, tuple]] = []
    for hour, counts in plan.hours.items():
        if runs and runs[-1][1] == hour and runs[-1][2] == counts:
            runs[-1] = (runs[-1][0], hour + HOUR, counts)
        else:
            runs.append((hour, hour + HOUR, counts))
    # The hourly rows are grouped by how they count (the distinct (sign, label) patterns),
    # not by run: for a range without days that is 2 patterns instead of ~1 run per day,
    # so the database returns ~15x fewer rows for Python to fold.
    patterns = list(dict.fromkeys(counts for _, _, counts in runs))
    parts = []
    if plan.days:
        labels = set(plan.days.values())
        # Every day counts for one label (no grouping by day): one constant day stands for
        # them all, so the database sums the days into one row per group.
        b_day = (
            Value(next(iter(plan.days)), output_field=DateField()) if len(labels) == 1 else F("day")
        )
        parts.append(
            UsageDaily.objects.filter(scope, day__in=list(plan.days))
            .annotate(**columns)
            .annotate(b_day=b_day, b_run=Value(None, output_field=IntegerField()))
            .values("b_day", "b_run", *names)
            .annotate(**sums)
            .order_by()
        )
    # When every UTC day's corrected hours count alike (the usual case: a day's hours
    # before local midnight), the hourly part is grouped by UTC day, a cheap truncation,
    # rather than by a CASE of one range per run (~80 % of the per-day statement's time).
    per_day: dict[date, set] = {}
    for hour, counts in plan.hours.items():
        per_day.setdefault(rollup.day_of(hour), set()).add(counts)
    day_pattern = (
        {d: next(iter(c)) for d, c in per_day.items()}
        if all(len(c) == 1 for c in per_day.values())
        else None
    )
    if runs:
        if day_pattern is not None:
            b_hour_day, run_of = TruncDate("hour", tzinfo=UTC), Value(BY_UTC_DAY)
        else:
            b_hour_day = Value(None, output_field=DateField())
            run_of = Case(
                *[
                    When(hour__gte=a, hour__lt=b, then=Value(patterns.index(counts)))
                    for a, b, counts in runs
                ],
                output_field=IntegerField(),
            )
        parts.append(
            UsageHourly.objects.filter(scope, hour__in=list(plan.hours))
            .annotate(**columns)
            .annotate(b_day=b_hour_day, b_run=run_of)
            .values("b_day", "b_run", *names)
            .annotate(**sums)
            .order_by()
        )
    if not parts:
        return []
    query = parts[0] if len(parts) == 1 else parts[0].union(parts[1], all=True).order_by()
    # Read through a plain cursor: the ORM's per-row, per-column converters were the
    # largest CPU cost of the page (thousands of rows x 12 sums). The sums are integers
    # (cost in money units), folded as integers and turned into Decimal once per group.
    sql, params = query.query.sql_with_params()
    with connections[query.db].cursor() as cursor:
        cursor.execute(sql, params)
        columns = [d[0] for d in cursor.description]
        rows = cursor.fetchall()
    at = {name: i for i, name in enumerate(columns)}
    group_at = [at[n] for n in names]
    sum_at = [at[f"s_{c}"] for c in COUNTERS]
    day_at, run_at = at["b_day"], at["b_run"]
    width = len(COUNTERS)
    net: dict[tuple, list] = {}

    def add(key: tuple, values: list, sign: int) -> None:
        numbers = net.get(key)
        if numbers is None:
            numbers = net[key] = [0] * width
        for i in range(width):
            numbers[i] += sign * values[i]

    for row in rows:
        group = tuple(row[i] for i in group_at)
        values = [row[i] or 0 for i in sum_at]
        if isinstance(values[rollup.COST], float):  # never: money columns are integers
            raise TypeError("rollup cost summed as a float: money columns hold integer units")
        values[rollup.COST] = int(values[rollup.COST])  # PostgreSQL: numeric, integral
        run, b_day = row[run_at], row[day_at]
        if isinstance(b_day, str):  # SQLite returns dates as text
            b_day = date.fromisoformat(b_day)
        elif isinstance(b_day, datetime):
            b_day = b_day.date()
        if run is None:
            add((plan.days[b_day], *group), values, 1)
        else:
            counts = day_pattern[b_day] if run == BY_UTC_DAY else patterns[run]
            for sign, lab in counts:
                add((lab, *group), values, sign)
    out = []
    for (lab, *group), numbers in net.items():
        if not any(numbers):
            continue
        entry = dict(zip(names, group, strict=True))
        if day:
            entry[day] = lab
        numbers[rollup.COST] = units_to_money(numbers[rollup.COST])
        entry.update({f"s_{c}": v for c, v in zip(COUNTERS, numbers, strict=True)})
        out.append(entry)
    return out
