"""The daily rollups: cut in each organization's billing timezone, read whole, rebuilt when
that timezone changes.

``UsageDaily`` holds a row per *local* day (the calendar day in the organization's
daily-rollup timezone, ``UsageDailyZone``), project, key and model, written by the one
rollup rule in the statement that writes the records and their hourly rollups
(``usage.rollup.GRAINS``). Every range of the dashboard is made of local days of the
billing timezone, so a range reads:

    [start ....... first local midnight | whole local days | last local midnight ..... end)
     hourly rollups + raw partial hours | UsageDaily rows   | hourly rollups + raw edges

The whole days come from ``UsageDaily`` alone (a 90-day view reads one row per day, key
and model; no hour is added or taken back), the rest by the one window rule
(``rollup_window`` below: whole UTC hours from ``UsageHourly``, partial hours,
and hours a local midnight of a :30 zone falls inside, from the raw records). Each record
lies in exactly one of the three parts, so a record committed between the statements is
counted once or not yet, never twice. When the zone a caller groups by is not the daily
rollups' zone (a rebuild pending, or a report in another timezone), no daily row is read:
the hourly rollups give the same figures, more slowly.

Locking: a writer reads its organization's zone ``FOR SHARE`` in its transaction
(``daily_zone_for_write``); a rebuild locks it ``FOR UPDATE`` (``daily_rollups_rebuild``),
so daily rows are never written in a zone a concurrent rebuild is replacing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.db import connection, connections, transaction
from django.db.models import BigIntegerField, DateField, F, Max, Min, Q, Sum, Value
from django.db.models.functions import Cast, Coalesce, TruncDate
from django.utils import timezone

from orgs.selectors import organization_by_id

from . import rollup
from .fields import units_to_money
from .models import UsageDaily, UsageDailyZone, UsageHourly, UsageRecord

COUNTERS = rollup.COUNTER_NAMES
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
# Daily rows written per INSERT by a rebuild.
REBUILD_BATCH = 2000


def zone_named(name: str | None) -> ZoneInfo:
    """The timezone of this name, UTC when empty or unknown to this system's tz database
    (the rule of ``usage.selectors.billing_zone``)."""
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def local_midnight(day: date, zone: ZoneInfo) -> datetime:
    """00:00 of ``day`` in ``zone`` as UTC: the first instant whose local date is ``day``
    (zoneinfo gives a skipped midnight the offset before the gap, i.e. the gap's start)."""
    return datetime.combine(day, time(0), tzinfo=zone).astimezone(UTC)


def hour_ceil(when: datetime) -> datetime:
    floor = rollup.hour_of(when)
    return floor if floor == when else floor + timedelta(hours=1)


@dataclass(frozen=True)
class RollupWindow:
    """How a range [start, end) is read exactly: ``hours`` selects the UsageHourly rows
    of the whole hours inside it (None: there are none), ``edges`` the UsageRecord rows
    of the partial hours (``has_edges``: whether there are any)."""

    hours: Q | None
    edges: Q
    has_edges: bool


def rollup_window(*, start: datetime, end: datetime, cuts: Iterable[datetime] = ()) -> RollupWindow:
    """The one rule that splits a range between rollups and raw records.

    Billing timezones with a :30 or :45 offset do not start on a UTC hour; the partial
    hours at both ends are read from the raw records so a total stays exact. ``cuts``:
    instants inside the range that a grouping splits at (local midnights of a per-day
    chart); an hour a cut falls inside is read from the raw records too.
    """
    inner_start = hour_ceil(start)
    inner_end = rollup.hour_of(end)
    if inner_start >= inner_end:
        return RollupWindow(
            hours=None, edges=Q(occurred_at__gte=start, occurred_at__lt=end), has_edges=start < end
        )
    split = sorted(
        {rollup.hour_of(c) for c in cuts if inner_start <= c < inner_end and c != rollup.hour_of(c)}
    )
    hours = Q(hour__gte=inner_start, hour__lt=inner_end)
    edges = Q(occurred_at__gte=start, occurred_at__lt=inner_start) | Q(
        occurred_at__gte=inner_end, occurred_at__lt=end
    )
    if split:
        hours &= ~Q(hour__in=split)
        for hour in split:
            edges |= Q(occurred_at__gte=hour, occurred_at__lt=hour + timedelta(hours=1))
    return RollupWindow(
        hours=hours, edges=edges, has_edges=bool(split) or start < inner_start or inner_end < end
    )


# --- the zone ----------------------------------------------------------------------------


def daily_zone(*, organization_id: int) -> ZoneInfo | None:
    """The timezone the organization's daily rollups are cut in; None before its first usage."""
    name = (
        UsageDailyZone.objects.filter(organization_id=organization_id)
        .values_list("zone", flat=True)
        .first()
    )
    return None if name is None else zone_named(name)


def _locked_zone(organization_id: int) -> str | None:
    """The zone row's name read FOR SHARE (PostgreSQL; SQLite serializes writers)."""
    table = connection.ops.quote_name(UsageDailyZone._meta.db_table)
    lock = " FOR SHARE" if connection.features.has_select_for_update else ""
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT zone FROM {table} WHERE organization_id = %s{lock}", [organization_id]
        )
        row = cursor.fetchone()
    return None if row is None else row[0]


def daily_zone_for_write(*, organization_id: int) -> ZoneInfo:
    """The zone a batch of the organization's records is rolled up in, locked FOR SHARE
    until the caller's transaction ends; on the first batch ever, the organization's
    billing timezone, recorded. Call inside the transaction that writes the records."""
    name = _locked_zone(organization_id)
    if name is None:
        organization = organization_by_id(organization_id=organization_id)
        zone = zone_named(organization.billing_timezone if organization else None)
        UsageDailyZone.objects.bulk_create(
            [UsageDailyZone(organization_id=organization_id, zone=zone.key)],
            ignore_conflicts=True,  # a concurrent first batch recorded it: theirs stands
        )
        name = _locked_zone(organization_id)
    return zone_named(name)


# --- rebuilding -----------------------------------------------------------------------


def _split_hours(first: datetime, last: datetime, zone: ZoneInfo) -> set[datetime]:
    """The UTC hours in [first, last] that a local midnight of ``zone`` falls inside (none
    for a zone whose offset is a whole number of hours)."""
    out = set()
    day = first.astimezone(zone).date()
    while (midnight := local_midnight(day, zone)) <= last + HOUR:
        if midnight != rollup.hour_of(midnight):
            out.add(rollup.hour_of(midnight))
        day += DAY
    return out


def _rebuilt_rows(
    organization_id: int, zone: ZoneInfo, *, hourly, records
) -> dict[tuple, list[int]]:
    """(day, project, key slot, model) -> counters (cost in money units) of the
    organization, by local day of ``zone``: the hourly rollups by the local day of their
    hour; an hour a local midnight splits (a :30 zone) from its raw records by their own
    local day, and what its hourly row holds beyond them (raw records past retention) on
    the day the hour starts in."""
    qs = hourly.objects.filter(organization_id=organization_id)
    bounds = qs.aggregate(first=Min("hour"), last=Max("hour"))
    first, last = bounds["first"], bounds["last"]
    out: dict[tuple, list[int]] = {}
    if first is None:
        return out
    split = _split_hours(first, last, zone)
    width = len(COUNTERS)
    sums = {f"s_{c}": Sum(c) for c in COUNTERS}
    money = hourly._meta.get_field("cost")

    def units(value) -> int:
        return int(money.get_db_prep_save(value, connection)) if value else 0

    def add(key: tuple, row: dict, sign: int = 1) -> None:
        numbers = out.setdefault(key, [0] * width)
        for i, c in enumerate(COUNTERS):
            value = row[f"s_{c}"] or 0
            numbers[i] += sign * (units(value) if i == rollup.COST else int(value))

    whole = (
        qs.exclude(hour__in=split)
        .annotate(b_day=TruncDate("hour", tzinfo=zone))
        .values("b_day", "project_id", "key_slot", "model")
        .annotate(**sums)
        .order_by()
    )
    for row in whole.iterator(chunk_size=5000):
        add(_bucket(_as_date(row["b_day"]), row), row)
    if split:
        raw = {f"s_{c.name}": c.orm_aggregate() for c in rollup.COUNTERS}
        for row in (
            records.objects.filter(organization_id=organization_id)
            .filter(_hours_q(split))
            .annotate(
                b_day=TruncDate("occurred_at", tzinfo=zone),
                key_slot=Coalesce("api_key_id", rollup.NO_KEY_SLOT),
                b_hour=rollup.HOUR.trunc("occurred_at", UTC),
            )
            .values("b_hour", "b_day", "project_id", "key_slot", "model")
            .annotate(**raw)
            .order_by()
        ):
            add(_bucket(_as_date(row["b_day"]), row), row)
            # Taken back from the hour's row below, which is added whole.
            add(_bucket(_start_day(row["b_hour"], zone), row), row, -1)
        for row in (
            qs.filter(hour__in=split)
            .values("hour", "project_id", "key_slot", "model")
            .annotate(**sums)
            .order_by()
        ):
            add(_bucket(_start_day(row["hour"], zone), row), row)
    return {k: v for k, v in out.items() if any(v)}


def _as_date(day) -> date:
    if isinstance(day, str):  # SQLite returns dates as text
        return date.fromisoformat(day)
    return day.date() if isinstance(day, datetime) else day


def _bucket(day: date, row: dict) -> tuple:
    return (day, row["project_id"], row["key_slot"], row["model"])


def _start_day(hour: datetime, zone: ZoneInfo) -> date:
    return hour.astimezone(zone).date()


def _hours_q(hours: Iterable[datetime]) -> Q:
    q = Q(pk__in=[])
    for hour in sorted(hours):
        q |= Q(occurred_at__gte=hour, occurred_at__lt=hour + HOUR)
    return q


def rebuild_with(
    organization_id: int, zone: ZoneInfo, *, daily, hourly, records, zones, now: datetime
) -> int:
    """The rebuild on these model classes (the app's, or a migration's historical ones);
    the caller holds the transaction. Returns how many daily rows were written."""
    row = zones.objects.select_for_update().filter(organization_id=organization_id).first()
    if row is None:
        zones.objects.bulk_create(
            [zones(organization_id=organization_id, zone=zone.key)], ignore_conflicts=True
        )
        row = zones.objects.select_for_update().get(organization_id=organization_id)
    daily.objects.filter(organization_id=organization_id).delete()
    buckets = _rebuilt_rows(organization_id, zone, hourly=hourly, records=records)
    batch = []
    for (day, project_id, key_slot, model), numbers in sorted(buckets.items()):
        values = dict(zip(COUNTERS, numbers, strict=True))
        values["cost"] = units_to_money(values["cost"])
        batch.append(
            daily(
                day=day,
                organization_id=organization_id,
                project_id=project_id,
                key_slot=key_slot,
                model=model,
                **values,
            )
        )
        if len(batch) == REBUILD_BATCH:
            daily.objects.bulk_create(batch)
            batch = []
    if batch:
        daily.objects.bulk_create(batch)
    zones.objects.filter(pk=row.pk).update(zone=zone.key, rebuilt_at=now)
    return len(buckets)


@transaction.atomic
def daily_rollups_rebuild(*, organization_id: int, zone_name: str) -> int:
    """Replace the organization's daily rollups by its usage cut in ``zone_name`` (a
    billing timezone change): in one transaction, under the zone row's lock, from the
    hourly rollups (and the raw records of hours a :30 zone's midnight splits). Returns
    the number of daily rows written."""
    return rebuild_with(
        organization_id,
        zone_named(zone_name),
        daily=UsageDaily,
        hourly=UsageHourly,
        records=UsageRecord,
        zones=UsageDailyZone,
        now=timezone.now(),
    )


def daily_zone_follow(*, organization_id: int, billing_timezone: str) -> bool:
    """After an organization is saved: rebuild its daily rollups when they are cut in
    another zone than its billing timezone now. True when it rebuilt. (An organization
    without usage has no zone yet: its first batch records the billing timezone.)"""
    wanted = zone_named(billing_timezone)
    current = daily_zone(organization_id=organization_id)
    if current is None or current.key == wanted.key:
        return False
    daily_rollups_rebuild(organization_id=organization_id, zone_name=wanted.key)
    return True


# --- reading --------------------------------------------------------------------------


@dataclass(frozen=True)
class ReadPlan:
    """How [start, end) is read: ``days`` the local days [first, last) served whole by
    ``UsageDaily`` (None: none), ``window`` the rest (hourly rollups and raw records)."""

    days: tuple[date, date] | None
    window: RollupWindow


def _combined(windows: list[RollupWindow]) -> RollupWindow:
    hours = [w.hours for w in windows if w.hours is not None]
    edges = [w.edges for w in windows if w.has_edges]
    hours_q = None
    for q in hours:
        hours_q = q if hours_q is None else hours_q | q
    edges_q = Q(pk__in=[])
    for q in edges:
        edges_q |= q
    return RollupWindow(hours=hours_q, edges=edges_q, has_edges=bool(edges))


def read_plan(
    *,
    start: datetime,
    end: datetime,
    daily_zone: ZoneInfo | None,
    group_zone: ZoneInfo | None = None,
    cuts: Iterable[datetime] = (),
) -> ReadPlan:
    """The plan for [start, end): the whole local days of ``daily_zone`` inside it from the
    daily rollups, unless the range is grouped by day in another zone (``group_zone``)."""
    cuts = sorted({c.astimezone(UTC) for c in cuts})
    if daily_zone is None or (group_zone is not None and group_zone.key != daily_zone.key):
        return ReadPlan(days=None, window=rollup_window(start=start, end=end, cuts=cuts))
    first = start.astimezone(daily_zone).date()
    if local_midnight(first, daily_zone) < start:
        first += DAY
    last = end.astimezone(daily_zone).date()  # local_midnight(last) <= end
    if first >= last:
        return ReadPlan(days=None, window=rollup_window(start=start, end=end, cuts=cuts))
    inner_start, inner_end = local_midnight(first, daily_zone), local_midnight(last, daily_zone)
    windows = []
    for a, b in ((start, inner_start), (inner_end, end)):
        if a < b:
            windows.append(rollup_window(start=a, end=b, cuts=[c for c in cuts if a < c < b]))
    window = (
        _combined(windows)
        if windows
        else RollupWindow(hours=None, edges=Q(pk__in=[]), has_edges=False)
    )
    return ReadPlan(days=(first, last), window=window)


def rollup_sums(
    *,
    scope: Q,
    plan: ReadPlan,
    columns: Mapping[str, object],
    day: bool = False,
    zone: ZoneInfo | None = None,
    counters: Sequence[str] = COUNTERS,
) -> dict[tuple, list]:
    """The rollup counters of the plan's daily rows and whole hours, grouped by
    ``columns`` (name -> expression valid on both rollup tables: project_id, key_slot,
    model) and, with ``day``, by local day in ``zone``: ``(day or None, *group values) ->
    sums in the order of ``counters``` (ints; cost as money), groups whose counters are all
    0 left out. ``counters``: the counters to sum (all by default; a page that shows money
    only asks for fewer, and the database sums fewer columns). One query (daily UNION ALL
    hourly); the raw records of the plan's edges are the caller's (``plan.window.edges``)."""
    names = list(columns)
    counters = tuple(counters)
    # Counts and tokens come back as bigint (Python ints, no Decimal per value); the cost
    # stays numeric: its sum in 1e-10 USD units may pass a bigint's range.
    sums = {f"s_{c}": Sum(c) if c == "cost" else Cast(Sum(c), BigIntegerField()) for c in counters}
    no_day = Value(None, output_field=DateField())
    parts = []
    if plan.days is not None:
        first, last = plan.days
        parts.append(
            UsageDaily.objects.filter(scope, day__gte=first, day__lt=last)
            .annotate(**columns)
            .annotate(b_day=F("day") if day else no_day)
            .values("b_day", *names)
            .annotate(**sums)
            .order_by()
        )
    if plan.window.hours is not None:
        parts.append(
            UsageHourly.objects.filter(scope, plan.window.hours)
            .annotate(**columns)
            .annotate(b_day=TruncDate("hour", tzinfo=zone) if day else no_day)
            .values("b_day", *names)
            .annotate(**sums)
            .order_by()
        )
    if not parts:
        return {}
    query = parts[0] if len(parts) == 1 else parts[0].union(parts[1], all=True).order_by()
    # Read through a plain cursor: the ORM's per-row, per-column converters were the
    # largest CPU cost of the page (thousands of rows x 11 sums). The sums are integers
    # (cost in money units), folded as integers and turned into Decimal once per group.
    sql, params = query.query.sql_with_params()
    with connections[query.db].cursor() as cursor:
        cursor.execute(sql, params)
        described = [d[0] for d in cursor.description]
        rows = cursor.fetchall()
    at = {name: i for i, name in enumerate(described)}
    group_at = [at[n] for n in names]
    sum_at = [at[f"s_{c}"] for c in counters]
    day_at = at["b_day"]
    cost_at = counters.index("cost") if "cost" in counters else None
    k = len(names)
    # The statement's columns are b_day, the groups, then the sums: a row splits by slices.
    sliced = day_at == 0 and group_at == list(range(1, k + 1)) and sum_at[0] == k + 1
    net: dict[tuple, list] = {}
    for row in rows:
        if sliced:
            key, values = row[: k + 1], row[k + 1 :]
        else:
            key = (row[day_at], *[row[i] for i in group_at])
            values = [row[i] for i in sum_at]
        b_day = key[0]
        if b_day is not None and type(b_day) is not date:
            key = (_as_date(b_day), *key[1:])
        numbers = net.get(key)
        if numbers is None:
            net[key] = list(values)
        else:
            for i, value in enumerate(values):
                if value:
                    numbers[i] += value
    out = {}
    for key, numbers in net.items():
        if None in numbers:  # a SUM over no row is NULL
            numbers = [n or 0 for n in numbers]
        # Counts and tokens are ints already (the bigint casts); the cost, summed as
        # numeric by PostgreSQL, is integral money units, turned into money once here.
        if cost_at is not None:
            cost = numbers[cost_at]
            if type(cost) is float:  # never: money columns are integers
                raise TypeError("rollup cost summed as a float: money columns hold integer units")
            numbers[cost_at] = units_to_money(int(cost or 0))
        if any(numbers):
            out[key] = numbers
    return out
