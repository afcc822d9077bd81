"""Reads of the usage app. Callers pass objects they already fetched through orgs.access.

Spend is the sum of *priced* records; unpriced records (no price known) are counted
separately and must be shown next to any total, never folded in as $0.

Costs are ``MoneyField`` columns (integer units of 1e-10 USD): ``Sum("cost")`` adds
integers in the database, exact on SQLite as on PostgreSQL, and comes back as
``Decimal`` through the field, so every total here equals the sum of its records.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from django.db.models import Count, F, Max, Min, Q, QuerySet, Sum
from django.db.models.functions import Coalesce, TruncDate
from django.utils import timezone

from . import daily, rollup
from .daily import RollupWindow, hour_ceil, rollup_window  # noqa: F401 (the window rule)
from .models import ROLLUP_MODELS, CatalogModel, UsageDailyZone, UsageHourly, UsageRecord

COUNTERS = rollup.COUNTER_NAMES


@dataclass
class SpendSummary:
    """Spend over a period: ``cost`` of priced records (None when nothing was recorded)
    and how many records are unpriced, so a page can say "$12.30 + 4 unpriced calls"."""

    period_start: datetime
    period_end: datetime
    cost: Decimal | None
    requests: int = 0
    unpriced_requests: int = 0


@dataclass
class UsageSummary:
    """Totals of a project over a range, overall and per model."""

    since: datetime
    until: datetime
    totals: dict = field(default_factory=dict)
    by_model: list[dict] = field(default_factory=list)

    @property
    def has_unpriced(self) -> bool:
        return bool(self.totals.get("unpriced_requests"))


def project_has_recent_usage(*, project, since: datetime) -> bool:
    """Whether any usage (success or error) was recorded for the project since ``since``."""
    return UsageRecord.objects.filter(project=project, occurred_at__gte=since).exists()


def billing_zone(*, organization) -> ZoneInfo:
    """The organization's billing timezone (UTC when unset or unknown to this system's
    tz database): months, days and ranges of its pages all start at midnight there."""
    return daily.zone_named(organization.billing_timezone)


def billing_month(*, organization, now: datetime | None = None) -> tuple[datetime, datetime]:
    """[start, end) of the current month in the organization's billing timezone, as UTC:
    the period whose spend pages show "this month" (every call stamped in it, one that a
    skewed clock put later today too), whole local days the daily rollups serve."""
    start = billing_month_start(organization=organization, now=now)
    return start, billing_month_start(organization=organization, now=start + timedelta(days=32))


def billing_month_start(*, organization, now: datetime | None = None) -> datetime:
    """Midnight of the 1st of the current month in the organization's billing timezone, as UTC."""
    now = now or timezone.now()
    local = now.astimezone(billing_zone(organization=organization))
    start = local.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    return start.astimezone(UTC)


_LOOK_UP = object()
# The counters a spend needs (the database sums only these).
SPEND_COUNTERS = ("requests", "cost", "unpriced_requests")


def _spend(
    *,
    organization_id: int,
    scope: Q,
    start: datetime,
    end: datetime,
    by_project: bool,
    zone=_LOOK_UP,
    day_zone: ZoneInfo | None = None,
) -> dict:
    """(cost, requests, unpriced) of [start, end) — per project id (``by_project``), per
    (project id, local day of ``day_zone``) with ``day_zone``, or under the key None —
    read by the one plan (``usage.daily.read_plan``): whole local days from the daily
    rollups, whole hours around them from the hourly ones, partial hours from the raw
    records. ``scope`` filters the rollups and the records alike (organization, project);
    ``zone``: the organization's daily-rollup zone when the caller has it (else one query)."""
    if zone is _LOOK_UP:
        zone = daily.daily_zone(organization_id=organization_id)
    cuts = []
    if day_zone is not None:
        day = start.astimezone(day_zone).date() + timedelta(days=1)
        while (midnight := daily.local_midnight(day, day_zone)) < end:
            cuts.append(midnight)
            day += timedelta(days=1)
    plan = daily.read_plan(start=start, end=end, daily_zone=zone, group_zone=day_zone, cuts=cuts)
    sums: dict = {}

    def add(key, cost, requests, unpriced) -> None:
        entry = sums.setdefault(key, [Decimal(0), 0, 0])
        entry[0] += cost or 0
        entry[1] += requests or 0
        entry[2] += unpriced or 0

    def key_of(project_id, local_day):
        if day_zone is not None:
            if isinstance(local_day, str):  # SQLite returns dates as text
                local_day = date.fromisoformat(local_day)
            return (project_id, local_day)
        return project_id if by_project else None

    grouped = by_project or day_zone is not None
    if plan.days is not None or plan.window.hours is not None:
        for (local_day, *group), (requests, cost, unpriced) in daily.rollup_sums(
            scope=scope,
            plan=plan,
            columns={"g_project": F("project_id")} if grouped else {},
            day=day_zone is not None,
            zone=day_zone,
            counters=SPEND_COUNTERS,
        ).items():
            add(key_of(group[0] if group else None, local_day), cost, requests, unpriced)
    if plan.window.has_edges:
        edges = UsageRecord.objects.filter(scope, plan.window.edges)
        aggregates = {
            "s_cost": Sum("cost"),
            "s_requests": Count("pk"),
            "s_unpriced": Count("pk", filter=Q(cost__isnull=True)),
        }
        if day_zone is not None:
            edges = edges.annotate(local_day=TruncDate("occurred_at", tzinfo=day_zone))
        rows = (
            edges.values(*(["project_id"] + (["local_day"] if day_zone else [])))
            .annotate(**aggregates)
            .order_by()
            if grouped
            else [edges.aggregate(**aggregates)]
        )
        for row in rows:
            add(
                key_of(row.get("project_id"), row.get("local_day")),
                row["s_cost"],
                row["s_requests"],
                row["s_unpriced"],
            )
    return sums


def _summary(start: datetime, end: datetime, sums: list | None) -> SpendSummary:
    cost, requests, unpriced = sums or (Decimal(0), 0, 0)
    return SpendSummary(
        period_start=start,
        period_end=end,
        cost=cost if requests else None,
        requests=requests,
        unpriced_requests=unpriced,
    )


def _spend_between(
    *, organization_id: int, scope: Q, start: datetime, end: datetime
) -> SpendSummary:
    """The spend of ``scope`` over [start, end) (``_spend``'s rule)."""
    sums = _spend(
        organization_id=organization_id, scope=scope, start=start, end=end, by_project=False
    )
    return _summary(start, end, sums.get(None))


def spend_by_project(*, organization, start: datetime, end: datetime, by_day: bool = False) -> dict:
    """Spend in [start, end) of each of the organization's projects that has any, by
    project id: ``_spend_between``'s rule grouped by project, so a page of budgets costs
    a fixed number of queries per range, not per budget. With ``by_day``, by (project id,
    local day of the billing timezone): one read for several ranges of whole days (a
    budget's month, its forecast window and the day before it)."""
    sums = _spend(
        organization_id=organization.pk,
        scope=Q(organization=organization),
        start=start,
        end=end,
        by_project=True,
        day_zone=billing_zone(organization=organization) if by_day else None,
    )
    return {key: _summary(start, end, entry) for key, entry in sums.items()}


def organization_spend_summary(*, organization, now: datetime | None = None) -> SpendSummary:
    """This month's spend of the organization (month in its billing timezone,
    ``billing_month``)."""
    start, end = billing_month(organization=organization, now=now)
    return _spend_between(
        organization_id=organization.pk, scope=Q(organization=organization), start=start, end=end
    )


def projects_spend_summary(*, organization, projects, now: datetime | None = None) -> SpendSummary:
    """Month-to-date spend of some of the organization's projects (month in its billing
    timezone): what a project member may see, who must not learn the other projects' spend.

    ``projects``: a queryset of project ids or instances, already scoped by orgs.access.
    """
    start, end = billing_month(organization=organization, now=now)
    scope = Q(organization=organization, project__in=projects)
    return _spend_between(organization_id=organization.pk, scope=scope, start=start, end=end)


def organization_spend_month_to_date(
    *, organization, now: datetime | None = None
) -> Decimal | None:
    """Month-to-date cost of the organization's priced records; None when nothing was
    recorded this month. Unpriced records are not in this sum: read
    ``organization_spend_summary(...).unpriced_requests`` to show them."""
    return organization_spend_summary(organization=organization, now=now).cost


def project_spend_month_to_date(*, project, now: datetime | None = None) -> SpendSummary:
    """This month's spend of one project (month in its organization's billing timezone,
    ``billing_month``)."""
    start, end = billing_month(organization=project.organization, now=now)
    return _spend_between(
        organization_id=project.organization_id, scope=Q(project=project), start=start, end=end
    )


def project_usage_summary(
    *, project, since: datetime | None = None, until: datetime | None = None
) -> UsageSummary:
    """Totals and per-model breakdown from the hourly rollups (default: last 30 days)."""
    until = until or timezone.now()
    since = since or until - timedelta(days=30)
    qs = UsageHourly.objects.filter(
        project=project, hour__gte=rollup.hour_of(since), hour__lt=until
    )
    sums = {f"s_{c}": Coalesce(Sum(c), 0) if c != "cost" else Sum("cost") for c in COUNTERS}
    raw = qs.aggregate(**sums)
    totals = {c: raw[f"s_{c}"] for c in COUNTERS}
    if not totals["requests"]:
        totals["cost"] = None
    by_model = [
        {"model": row["model"], **{c: row[f"s_{c}"] for c in COUNTERS}}
        for row in qs.values("model").annotate(**sums).order_by("-s_requests", "model")
    ]
    _count_incomplete_apart(
        project=project, since=since, until=until, totals=totals, by_model=by_model
    )
    return UsageSummary(since=since, until=until, totals=totals, by_model=by_model)


def _count_incomplete_apart(
    *, project, since: datetime, until: datetime, totals: dict, by_model: list[dict]
) -> None:
    """Show incomplete calls (streams cut short or stopped) as their own figure.

    The rollups count a cut stream (status incomplete with an error type) among the
    errors; the page shows it as ``incomplete`` instead and takes it out of ``errors``,
    so "errors" means calls that produced nothing. Read from the raw records over the
    same whole hours as the rollups (incomplete calls are few; the index is by time).
    """
    start = rollup.hour_of(since)
    rows = (
        UsageRecord.objects.filter(
            rollup.incomplete_q(),
            project=project,
            occurred_at__gte=start,
            occurred_at__lt=hour_ceil(until),
        )
        .values("model")
        .annotate(n=Count("pk"), in_errors=Count("pk", filter=rollup.IS_ERROR.q()))
    )
    counted = {row["model"]: row for row in rows}
    totals["incomplete"] = sum(row["n"] for row in counted.values())
    totals["errors"] = (totals.get("errors") or 0) - sum(
        row["in_errors"] for row in counted.values()
    )
    for entry in by_model:
        row = counted.get(entry["model"], {"n": 0, "in_errors": 0})
        entry["incomplete"] = row["n"]
        entry["errors"] = (entry.get("errors") or 0) - row["in_errors"]


def project_recent_usage_records(*, project, limit: int = 50) -> QuerySet[UsageRecord]:
    """The newest records of a project, for the usage page."""
    return (
        UsageRecord.objects.filter(project=project)
        .select_related("api_key")
        .order_by("-occurred_at", "-id")[:limit]
    )


def daily_zones(*, organization_ids: Iterable[int] | None = None) -> dict[int, ZoneInfo]:
    """The timezone each organization's daily rollups are cut in (``UsageDailyZone``)."""
    qs = UsageDailyZone.objects.all()
    if organization_ids is not None:
        qs = qs.filter(organization_id__in=list(organization_ids))
    return {
        org_id: daily.zone_named(name) for org_id, name in qs.values_list("organization_id", "zone")
    }


def rollups_recomputed(
    *,
    since: datetime,
    until: datetime,
    project=None,
    grain: rollup.Grain = rollup.HOUR,
    zone: ZoneInfo = UTC,
    organization_id: int | None = None,
) -> dict[tuple, dict]:
    """Hourly (or daily, cut in ``zone``) rollups recomputed from raw records for buckets
    in [since, until), by the same rule the write path applies (``usage.rollup.COUNTERS``,
    ``GRAINS``)."""
    qs = UsageRecord.objects.filter(occurred_at__gte=since, occurred_at__lt=until)
    if project is not None:
        qs = qs.filter(project=project)
    if organization_id is not None:
        qs = qs.filter(organization_id=organization_id)
    rows = (
        qs.annotate(bucket=grain.trunc("occurred_at", zone))
        .values("bucket", "project_id", "api_key_id", "model")
        .annotate(**rollup.orm_aggregates("s_"))
    )
    out: dict[tuple, dict] = {}
    for row in rows:
        bucket = row["bucket"]
        key = (
            row["project_id"],
            row["api_key_id"] or rollup.NO_KEY_SLOT,
            row["model"],
            bucket.astimezone(UTC) if isinstance(bucket, datetime) else bucket,
        )
        values = {c: row[f"s_{c}"] for c in COUNTERS}
        values["cost"] = values["cost"] or Decimal(0)
        prev = out.get(key)
        if prev:  # a deleted key (api_key NULL) shares slot 0 with keyless records
            for c in COUNTERS:
                prev[c] += values[c]
        else:
            out[key] = values
    return out


def rollups_stored(
    *,
    since,
    until,
    project=None,
    grain: rollup.Grain = rollup.HOUR,
    organization_id: int | None = None,
) -> dict[tuple, dict]:
    """Stored hourly rollups for hours in [since, until) (datetimes), or daily ones for
    days in [since, until) (dates)."""
    column = grain.column
    qs = ROLLUP_MODELS[grain.name].objects.filter(
        **{f"{column}__gte": since, f"{column}__lt": until}
    )
    if project is not None:
        qs = qs.filter(project=project)
    if organization_id is not None:
        qs = qs.filter(organization_id=organization_id)
    return {
        (
            r["project_id"],
            r["key_slot"],
            r["model"],
            r[column].astimezone(UTC) if grain is rollup.HOUR else r[column],
        ): {c: r[c] for c in COUNTERS}
        for r in qs.values("project_id", "key_slot", "model", column, *COUNTERS)
    }


def _compared(expected: dict, stored: dict, grain: rollup.Grain) -> list[dict]:
    zero = dict.fromkeys(COUNTERS, 0)
    diffs = []
    for key in sorted(set(expected) | set(stored), key=lambda k: (k[3], k[0], k[1], k[2])):
        exp = expected.get(key, zero)
        got = stored.get(key)
        if got is None and not any(exp.values()):
            continue
        got = got or zero
        fields = {c: (got[c], exp[c]) for c in COUNTERS if Decimal(got[c]) != Decimal(exp[c])}
        if fields:
            diffs.append(
                {
                    "project_id": key[0],
                    "key_slot": key[1],
                    "model": key[2],
                    grain.column: key[3],
                    "grain": grain.name,
                    "fields": fields,
                }
            )
    return diffs


def rollup_differences(
    *,
    since: datetime,
    until: datetime,
    project=None,
    grain: rollup.Grain = rollup.HOUR,
    whole_days_only: bool = False,
) -> list[dict]:
    """Every bucket where stored rollups and the raw records disagree: the whole hours
    covering [since, until), or for the daily rollups the local days (each organization's
    daily-rollup zone) it touches; with ``whole_days_only``, the days starting at or after
    ``since`` only (the days before lost raw records to the retention purge)."""
    if grain is rollup.HOUR:
        since, until = rollup.hour_of(since), hour_ceil(until)
        expected = rollups_recomputed(since=since, until=until, project=project, grain=grain)
        stored = rollups_stored(since=since, until=until, project=project, grain=grain)
        return _compared(expected, stored, grain)
    zones = daily_zones()  # a project (an id) filters the queries below
    diffs = []
    for org_id, zone in sorted(zones.items()):
        first = since.astimezone(zone).date()
        if whole_days_only and daily.local_midnight(first, zone) < since:
            first += timedelta(days=1)
        last = (until - timedelta(microseconds=1)).astimezone(zone).date() + timedelta(days=1)
        if first >= last:
            continue
        start, end = daily.local_midnight(first, zone), daily.local_midnight(last, zone)
        expected = rollups_recomputed(
            since=start,
            until=end,
            project=project,
            grain=grain,
            zone=zone,
            organization_id=org_id,
        )
        stored = rollups_stored(
            since=first, until=last, project=project, grain=grain, organization_id=org_id
        )
        diffs += _compared(expected, stored, grain)
    return diffs


def project_with_usage(*, public_id) -> int | None:
    """The id of the project with this public id if it has any usage (records or rollups),
    else None: found through usage's own tables, for the operator's check command."""
    for model in (UsageHourly, UsageRecord):
        found = (
            model.objects.filter(project__public_id=public_id)
            .values_list("project_id", flat=True)
            .first()
        )
        if found is not None:
            return found
    return None


def usage_time_range() -> tuple[datetime | None, datetime | None]:
    """Oldest and newest raw record times (for check_rollups defaults)."""
    agg = UsageRecord.objects.aggregate(first=Min("occurred_at"), last=Max("occurred_at"))
    return agg["first"], agg["last"]


def catalog_models(*, include_inactive: bool = False) -> QuerySet[CatalogModel]:
    """The model catalog (not tenant data: the same for every organization), by category
    then id, for pickers and for validating the model ids people choose."""
    models = (
        CatalogModel.objects.all()
        if include_inactive
        else CatalogModel.objects.filter(is_active=True)
    )
    return models.order_by("category", "model_id")


def catalog_models_for(
    *, allowed: tuple[str, ...] | list[str] = (), exclude_categories: tuple[str, ...] = ()
) -> list[tuple[str, bool]]:
    """(model id, supports reasoning) of the active catalog, by id, one query: the models a
    project may call (``allowed``: its allow-list; empty means every model), without the
    categories the caller cannot use."""
    models = CatalogModel.objects.filter(is_active=True).exclude(category__in=exclude_categories)
    if allowed:
        models = models.filter(model_id__in=allowed)
    return [
        (model_id, bool(reasoning))
        for model_id, reasoning in models.order_by("model_id").values_list(
            "model_id", "supports_reasoning"
        )
    ]
