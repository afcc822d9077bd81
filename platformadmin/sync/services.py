"""Pulls from OpenAI's Admin API and the reconciliation of logged spend with OpenAI's bill.

Every pull is a ``SyncRun`` with its report, kept as history. Usage and costs land in
their own tables, idempotent on (organization, day, group): a pull replaces the days it
covers in one transaction, so a second pull with nothing changed upstream changes nothing.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from keys.selectors import organization_admin_key, organizations_with_admin_key
from orgs.selectors import organization_projects
from platformadmin.notifications import kinds
from platformadmin.notifications.services import notifications_enqueue
from platformadmin.openai.admin import AdminAPIError, admin_buckets
from platformadmin.templatetags.console_format import format_money
from usage.fields import quantize_money
from usage.reconciliation import logged_daily_totals

from .models import SyncRun, UpstreamCostBucket, UpstreamUsageBucket

# OpenAI's Costs API sends amounts as floats: differences below this are rounding, not spend.
ROUNDING_TOLERANCE = Decimal("0.000001")
PROVISIONAL_DAYS = 2  # today and yesterday may still change upstream


class NoAdminKey(Exception):
    """The organization has no admin key stored: nothing can be pulled."""


def _utc_midnight(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


def _admin_key(organization):
    admin_key = organization_admin_key(organization=organization)
    if admin_key is None:
        raise NoAdminKey(
            f"{organization.name} has no admin key: an owner stores one (sk-admin-…) on the "
            "organization page before the console can read OpenAI's figures."
        )
    return admin_key


def _model_of(line_item: str | None) -> str:
    """OpenAI's line items read "<model>, input", "<model>, cached input", "<model>, output"."""
    return (line_item or "").split(",")[0].strip()


@dataclass
class _Pulled:
    usage: list[dict] = field(default_factory=list)
    costs: list[dict] = field(default_factory=list)


def _pull(admin_key, *, start: datetime, end: datetime) -> _Pulled:
    start_s, end_s = int(start.timestamp()), int(end.timestamp())
    usage_buckets = admin_buckets(
        admin_key,
        "read OpenAI's usage",
        lambda api, page: api.usage.completions(
            start_time=start_s,
            end_time=end_s,
            bucket_width="1d",
            group_by=["project_id", "api_key_id", "model"],
            limit=31,
            **({"page": page} if page else {}),
        ),
    )
    cost_buckets = admin_buckets(
        admin_key,
        "read OpenAI's costs",
        lambda api, page: api.usage.costs(
            start_time=start_s,
            end_time=end_s,
            bucket_width="1d",
            group_by=["project_id", "line_item"],
            limit=180,
            **({"page": page} if page else {}),
        ),
    )
    pulled = _Pulled()
    for bucket in usage_buckets:
        day = datetime.fromtimestamp(bucket.start_time, UTC).date()
        for r in bucket.results:
            pulled.usage.append(
                {
                    "day": day,
                    "project_openai_id": getattr(r, "project_id", None) or "",
                    "api_key_openai_id": getattr(r, "api_key_id", None) or "",
                    "model": getattr(r, "model", None) or "",
                    "requests": int(getattr(r, "num_model_requests", 0) or 0),
                    "input_tokens": int(getattr(r, "input_tokens", 0) or 0),
                    "cached_input_tokens": int(getattr(r, "input_cached_tokens", 0) or 0),
                    "output_tokens": int(getattr(r, "output_tokens", 0) or 0),
                }
            )
    for bucket in cost_buckets:
        day = datetime.fromtimestamp(bucket.start_time, UTC).date()
        for r in bucket.results:
            amount = getattr(r, "amount", None)
            value = getattr(amount, "value", None) if amount is not None else None
            pulled.costs.append(
                {
                    "day": day,
                    "project_openai_id": getattr(r, "project_id", None) or "",
                    "line_item": getattr(r, "line_item", None) or "",
                    # The float as OpenAI printed it, not its binary expansion.
                    "amount": quantize_money(Decimal(str(value or 0))),
                }
            )
    return pulled


def _merge(rows: list[dict], keys: tuple[str, ...], sums: tuple[str, ...]) -> list[dict]:
    """Rows of one (day, group) added together (a group can come back on two pages)."""
    merged: dict[tuple, dict] = {}
    for row in rows:
        key = tuple(row[k] for k in keys)
        if key in merged:
            for s in sums:
                merged[key][s] += row[s]
        else:
            merged[key] = dict(row)
    return list(merged.values())


def usage_pull(*, organization, days: int | None = None, now=None, actor=None) -> SyncRun:
    """Pull ``days`` UTC days (to today) of OpenAI's completions usage (by project, API key
    and model) and costs (by project and line item) into their tables."""
    now = now or timezone.now()
    days = days or settings.OPENAI_USAGE_PULL_DAYS
    first_day = now.astimezone(UTC).date() - timedelta(days=days - 1)
    start, end = _utc_midnight(first_day), _utc_midnight(now.astimezone(UTC).date() + timedelta(1))
    run = SyncRun.objects.create(
        organization=organization, kind=SyncRun.Kind.USAGE, started_at=now, triggered_by=actor
    )
    try:
        pulled = _pull(_admin_key(organization), start=start, end=end)
    except (AdminAPIError, NoAdminKey) as exc:
        run.status, run.finished_at = SyncRun.Status.FAILED, timezone.now()
        run.report = {"errors": [str(exc)]}
        run.save(update_fields=["status", "finished_at", "report"])
        return run
    usage = _merge(
        pulled.usage,
        ("day", "project_openai_id", "api_key_openai_id", "model"),
        ("requests", "input_tokens", "cached_input_tokens", "output_tokens"),
    )
    costs = _merge(pulled.costs, ("day", "project_openai_id", "line_item"), ("amount",))
    with transaction.atomic():
        changed = _replace_days(organization, first_day, now, usage, costs)
        run.status, run.finished_at = SyncRun.Status.SUCCEEDED, timezone.now()
        run.report = {
            "days": [first_day.isoformat(), now.astimezone(UTC).date().isoformat()],
            "usage_rows": len(usage),
            "cost_rows": len(costs),
            "changed": changed,
            "unchanged": not changed,
            "errors": [],
        }
        run.save(update_fields=["status", "finished_at", "report"])
    today = now.astimezone(UTC).date()
    rows = reconciliation(organization=organization, since=first_day, until=today, now=now)
    run.report["gaps_notified"] = reconciliation_gaps_notify(
        organization=organization, gaps=reconciliation_gaps(rows)
    )
    run.save(update_fields=["report"])
    return run


def organizations_to_pull():
    """Organizations with an active admin key (the periodic pulls' work list)."""
    return organizations_with_admin_key()


def _replace_days(organization, first_day: date, now, usage: list[dict], costs: list[dict]) -> bool:
    """Store the pulled days in place of what was there; True when anything differs."""
    usage_fields = ("requests", "input_tokens", "cached_input_tokens", "output_tokens")
    usage_key = ("day", "project_openai_id", "api_key_openai_id", "model")
    cost_key = ("day", "project_openai_id", "line_item")
    old_usage = {
        tuple(getattr(b, k) for k in usage_key): tuple(getattr(b, f) for f in usage_fields)
        for b in UpstreamUsageBucket.objects.filter(organization=organization, day__gte=first_day)
    }
    old_costs = {
        tuple(getattr(b, k) for k in cost_key): b.amount
        for b in UpstreamCostBucket.objects.filter(organization=organization, day__gte=first_day)
    }
    new_usage = {tuple(r[k] for k in usage_key): tuple(r[f] for f in usage_fields) for r in usage}
    new_costs = {tuple(r[k] for k in cost_key): r["amount"] for r in costs}
    if old_usage == new_usage and old_costs == new_costs:
        return False
    UpstreamUsageBucket.objects.filter(organization=organization, day__gte=first_day).delete()
    UpstreamCostBucket.objects.filter(organization=organization, day__gte=first_day).delete()
    UpstreamUsageBucket.objects.bulk_create(
        UpstreamUsageBucket(organization=organization, pulled_at=now, **r) for r in usage
    )
    UpstreamCostBucket.objects.bulk_create(
        UpstreamCostBucket(organization=organization, pulled_at=now, **r) for r in costs
    )
    return True


# --- Reconciliation ------------------------------------------------------------------------


@dataclass
class ReconciliationRow:
    """One (day, project, model): what the console logged vs what OpenAI reports."""

    day: date
    project: object | None  # the console's project, None when OpenAI's is not linked here
    project_openai_id: str
    model: str
    logged_requests: int = 0
    logged_input_tokens: int = 0
    logged_output_tokens: int = 0
    logged_cost: Decimal = Decimal(0)
    logged_unpriced: int = 0
    upstream_requests: int = 0
    upstream_input_tokens: int = 0
    upstream_output_tokens: int = 0
    upstream_cost: Decimal = Decimal(0)
    provisional: bool = False

    @property
    def cost_difference(self) -> Decimal:
        """Logged minus OpenAI's (negative: the console saw less than OpenAI billed)."""
        diff = self.logged_cost - self.upstream_cost
        return Decimal(0) if abs(diff) < ROUNDING_TOLERANCE else diff

    @property
    def cost_share(self) -> Decimal | None:
        """The difference as a share of OpenAI's cost (None when OpenAI billed nothing)."""
        if not self.upstream_cost:
            return None
        return (self.cost_difference / self.upstream_cost * 100).quantize(Decimal("0.1"))

    @property
    def token_difference(self) -> int:
        return (self.logged_input_tokens + self.logged_output_tokens) - (
            self.upstream_input_tokens + self.upstream_output_tokens
        )


def _gap_threshold() -> tuple[Decimal, Decimal]:
    return Decimal(settings.RECONCILIATION_GAP_PERCENT), Decimal(
        settings.RECONCILIATION_GAP_MIN_USD
    )


def reconciliation(*, organization, since: date, until: date, now=None) -> list[ReconciliationRow]:
    """Per UTC day, project and model: logged tokens and cost (usage rollups) vs OpenAI's
    usage buckets (tokens, requests) and Costs (the bill, by line item's model)."""
    now = now or timezone.now()
    projects = list(organization_projects(organization=organization))
    by_openai_id = {p.openai_project_id: p for p in projects if p.openai_project_id}
    by_pk = {p.pk: p for p in projects}
    rows: dict[tuple, ReconciliationRow] = {}
    provisional_from = now.astimezone(UTC).date() - timedelta(days=PROVISIONAL_DAYS - 1)

    def row(day, project, openai_id, model) -> ReconciliationRow:
        key = (day, project.pk if project else openai_id, model)
        if key not in rows:
            rows[key] = ReconciliationRow(
                day=day,
                project=project,
                project_openai_id=openai_id,
                model=model,
                provisional=day >= provisional_from,
            )
        return rows[key]

    for logged in logged_daily_totals(organization=organization, since=since, until=until):
        project = by_pk.get(logged["project_id"])
        r = row(
            logged["day"], project, project.openai_project_id if project else "", logged["model"]
        )
        r.logged_requests += logged["requests"] - logged["errors"]
        r.logged_input_tokens += logged["input_tokens"]
        r.logged_output_tokens += logged["output_tokens"]
        r.logged_cost += logged["cost"] or Decimal(0)
        r.logged_unpriced += logged["unpriced_requests"]
    for bucket in UpstreamUsageBucket.objects.filter(
        organization=organization, day__gte=since, day__lte=until
    ):
        project = by_openai_id.get(bucket.project_openai_id)
        r = row(bucket.day, project, bucket.project_openai_id, bucket.model)
        r.upstream_requests += bucket.requests
        r.upstream_input_tokens += bucket.input_tokens
        r.upstream_output_tokens += bucket.output_tokens
    for bucket in UpstreamCostBucket.objects.filter(
        organization=organization, day__gte=since, day__lte=until
    ):
        project = by_openai_id.get(bucket.project_openai_id)
        r = row(bucket.day, project, bucket.project_openai_id, _model_of(bucket.line_item))
        r.upstream_cost += bucket.amount
    return sorted(
        rows.values(),
        key=lambda r: (r.day, getattr(r.project, "name", r.project_openai_id), r.model),
        reverse=False,
    )


@dataclass
class ProjectDayGap:
    """A project and day whose logged spend fell below OpenAI's bill beyond the threshold."""

    day: date
    project: object | None
    project_openai_id: str
    logged_cost: Decimal
    upstream_cost: Decimal
    provisional: bool

    @property
    def missing(self) -> Decimal:
        return self.upstream_cost - self.logged_cost


def reconciliation_gaps(rows: list[ReconciliationRow]) -> list[ProjectDayGap]:
    """Project-days (all models together) where the console logged less than OpenAI billed
    by more than RECONCILIATION_GAP_PERCENT and RECONCILIATION_GAP_MIN_USD."""
    percent, minimum = _gap_threshold()
    totals: dict[tuple, list] = defaultdict(lambda: [Decimal(0), Decimal(0), False, None, ""])
    for r in rows:
        key = (r.day, r.project.pk if r.project else r.project_openai_id)
        t = totals[key]
        t[0] += r.logged_cost
        t[1] += r.upstream_cost
        t[2] = t[2] or r.provisional
        t[3], t[4] = r.project, r.project_openai_id
    gaps = []
    for (day, _), (logged, upstream, provisional, project, openai_id) in sorted(
        totals.items(), key=lambda kv: (kv[0][0], str(kv[0][1]))
    ):
        missing = upstream - logged
        if missing >= minimum and upstream and missing / upstream * 100 > percent:
            gaps.append(ProjectDayGap(day, project, openai_id, logged, upstream, provisional))
    return gaps


def reconciliation_gaps_notify(*, organization, gaps: list[ProjectDayGap]) -> int:
    """One notification per project and closed day whose logged spend fell below OpenAI's
    bill (an application is not reporting its usage). Provisional days (today, yesterday)
    are not notified: OpenAI's figures for them still move. Returns how many were new."""
    sent = 0
    for gap in gaps:
        if gap.provisional:
            continue
        name = gap.project.name if gap.project else f"OpenAI project {gap.project_openai_id}"
        subject = (
            f"project:{gap.project.public_id}" if gap.project else f"openai:{gap.project_openai_id}"
        )
        with transaction.atomic():
            written = notifications_enqueue(
                organization=organization,
                kind=kinds.RECONCILIATION_GAP,
                subject=subject,
                period=gap.day.isoformat(),
                stage="gap",
                title=f"{name}: logged spend below OpenAI's bill on {gap.day.isoformat()}",
                body=(
                    f"On {gap.day.isoformat()} (UTC) the console logged {format_money(gap.logged_cost)} "
                    f"for {name}, but OpenAI's Costs API reports {format_money(gap.upstream_cost)} "
                    f"({format_money(gap.missing)} missing). Some application calling OpenAI with "
                    "this project's keys is not reporting its usage to the console: check the "
                    "project's keys on the reconciliation page and add the reporter to that "
                    "application."
                ),
                payload={
                    "day": gap.day.isoformat(),
                    "project": str(gap.project.public_id) if gap.project else None,
                    "openai_project_id": gap.project_openai_id,
                    "logged_cost": str(gap.logged_cost),
                    "openai_cost": str(gap.upstream_cost),
                    "missing": str(gap.missing),
                },
                project=gap.project,
            )
        sent += bool(written)
    return sent
