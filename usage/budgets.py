"""Budgets: the period, the status (spend, reservations, forecast), evaluation and alerts.

A budget's period is the calendar month in its organization's billing timezone. Spend
comes from ``usage.selectors`` (rollups for whole hours, raw records for the edges; the
one spend rule), unpriced calls counted apart and named in every alert. Evaluation writes
one ``BudgetAlert`` per (budget, period, threshold) and, only when that row is new, the
notifications it causes, in one transaction: the unique constraint is the guard against
two evaluations racing. Evaluation is queued after usage lands and *coalesced*: one
flag per budget in the shared cache, so a burst of batches queues one task, not one each
(docs/budgets.md).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

from celery import current_app
from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Min, Q
from django.utils import timezone

from orgs.audit import audit_log
from platformadmin.notifications.services import notifications_enqueue
from platformadmin.templatetags.console_format import format_count, format_money

from . import rollup
from .daily import local_midnight
from .fields import quantize_money
from .models import Budget, BudgetAlert, UsageHourly

# The period and the open reservations are read exactly as the hard limit reads them.
from .reservations import Period, _reserved_by_budget, budget_period
from .selectors import billing_zone, spend_by_project

OK, WARNING, EXCEEDED = "ok", "warning", "exceeded"
# Sent by name from the registry (usage/apps.py registers usage/tasks.py in every process):
# tasks.py imports this module, so importing it here would make a cycle.
EVALUATE_TASK = "usage.budget_evaluate"
FORECAST_DAYS = 7  # the forecast's pace: the last 7 whole local days and today so far
FORECAST_MIN_HISTORY = timedelta(days=1)
_DAY = Decimal(86_400_000_000)  # microseconds
_PERCENT = Decimal("0.1")


# --- The status --------------------------------------------------------------------------


@dataclass(frozen=True)
class BudgetStatus:
    """Where a budget stands at ``now``: money in exact ``Decimal``."""

    budget: Budget
    period: Period
    now: datetime
    spend: Decimal  # priced spend of the period so far
    requests: int
    unpriced_requests: int  # calls with no known price: not in ``spend``, named next to it
    reserved: Decimal  # open reservations of console calls in flight (hard limit)
    remaining: Decimal  # amount - spend - reserved (negative: over)
    forecast: Decimal | None  # projected month-end spend; None with under a day of data
    percent: Decimal  # spend / amount x 100, one decimal
    thresholds_crossed: tuple[int, ...]
    state: str  # ok / warning / exceeded

    @property
    def bar_percent(self) -> int:
        """Width of the page's bar (0..100)."""
        return int(min(max(self.percent, Decimal(0)), Decimal(100)))

    @property
    def warn_at(self) -> int:
        """Where the bar turns amber: the lowest threshold (80 when none is below 100)."""
        return min((t for t in self.budget.thresholds if t < 100), default=80)

    @property
    def over_by(self) -> Decimal:
        """How far spend and reservations are past the amount (0 when within it)."""
        return max(-self.remaining, Decimal(0))

    @property
    def forecast_over(self) -> bool:
        return self.forecast is not None and self.forecast > self.budget.amount

    @property
    def spend_text(self) -> str:
        """ "$412.50 + 37 unpriced calls": unpriced calls are never left out."""
        return spend_text(self.spend, self.unpriced_requests)


def spend_text(spend: Decimal, unpriced: int) -> str:
    text = format_money(spend)
    if unpriced:
        text += f" + {format_count(unpriced)} unpriced call{'s' if unpriced != 1 else ''}"
    return text


def _combine(by_project: dict[int, list], project_id: int | None):
    """(cost, requests, unpriced) of one project, or of all of them (organization), from
    ``_by_project``'s sums."""
    rows = [by_project[project_id]] if project_id in by_project else []
    if project_id is None:
        rows = list(by_project.values())
    return (
        sum((row[0] for row in rows), Decimal(0)),
        sum(row[1] for row in rows),
        sum(row[2] for row in rows),
    )


def forecast_window(*, organization, now: datetime) -> tuple[datetime, datetime]:
    """[start, end) of the forecast's pace, in the billing timezone: from local midnight
    ``FORECAST_DAYS`` days before today to the end of today, whole local days (the daily
    rollups serve them whole; a call stamped later today by a skewed clock counts)."""
    zone = billing_zone(organization=organization)
    today = now.astimezone(zone).date()
    return (
        local_midnight(today - timedelta(days=FORECAST_DAYS), zone),
        local_midnight(today + timedelta(days=1), zone),
    )


def _first_usage_by_project(
    organization, *, now: datetime, window_start: datetime, before: set[int], recent: set[int]
) -> dict[int, datetime]:
    """When each project's usage starts, as far as the forecast needs it: a project with
    usage on the local day before the window (``before``) has a full window (its "first"
    is that day's midnight); for the projects with usage in the window (``recent``) that
    had none that day, the first hour with usage in the window (new projects: usually
    none, and then no query)."""
    zone = billing_zone(organization=organization)
    day_before = local_midnight(window_start.astimezone(zone).date() - timedelta(days=1), zone)
    found = dict.fromkeys(before, day_before)
    newer = sorted(recent - before)
    if newer:
        rows = (
            UsageHourly.objects.filter(
                organization=organization,
                project_id__in=newer,
                hour__gte=rollup.hour_of(window_start),
                hour__lt=now,
            )
            .values("project_id")
            .annotate(first=Min("hour"))
            .order_by()
        )
        found.update({row["project_id"]: row["first"] for row in rows})
    return found


def _by_project(per_day: dict, first: date, end: date) -> dict[int, list]:
    """The per-(project, local day) spend of the days in [first, end), summed per project:
    project id -> [cost, requests, unpriced calls]."""
    sums: dict[int, list] = {}
    for (project_id, day), summary in per_day.items():
        if first <= day < end:
            entry = sums.setdefault(project_id, [Decimal(0), 0, 0])
            entry[0] += summary.cost or 0
            entry[1] += summary.requests
            entry[2] += summary.unpriced_requests
    return sums


def _days(delta: timedelta) -> Decimal:
    return Decimal(delta // timedelta(microseconds=1)) / _DAY


def forecast_projection(
    *,
    spend: Decimal,
    recent: Decimal,
    first: datetime | None,
    period: Period,
    now: datetime,
    window_start: datetime,
) -> Decimal | None:
    """Month-end projection: spend so far + (spend of the window / its days) x days left.

    The window (``forecast_window``) is the last 7 whole local days and today so far, so
    its length is the time from ``window_start`` to now (7 to 8 days). ``first``: when the
    scope's usage starts (``_first_usage_by_project``). Under a day of data (or none): no
    forecast. With less than the window: the window's spend is divided by the days since
    that first hour, or a new project's rate would read too low. Exact: Decimal, rounded
    to the stored unit.
    """
    if first is None or now - first < FORECAST_MIN_HISTORY:
        return None
    observed = min(now - first, now - window_start)
    rate = recent / _days(observed)
    left = max(period.end - now, timedelta(0))
    return quantize_money(spend + rate * _days(left))


def budget_statuses(*, budgets: Iterable[Budget], now: datetime | None = None) -> list:
    """The status of each budget, in order, in a fixed number of queries per
    organization (spend grouped by project), not per budget: the list page's rule."""
    now = now or timezone.now()
    budgets = list(budgets)
    by_org: dict[int, list[Budget]] = {}
    for budget in budgets:
        by_org.setdefault(budget.organization_id, []).append(budget)
    found: dict[int, BudgetStatus] = {}
    for group in by_org.values():
        organization = group[0].organization
        period = budget_period(organization=organization, now=now)
        # One read of the spend per project and local day, from the day before the forecast
        # window (or the month's start) to the month's end, whole local days that the daily
        # rollups serve; the month, the window and the day before are summed from it.
        # The whole month, as the hard limit reads it (usage/reservations.py): a call
        # stamped later today by a skewed clock is spend of this month all the same.
        window_start, window_end = forecast_window(organization=organization, now=now)
        billing = billing_zone(organization=organization)
        window_first = window_start.astimezone(billing).date()
        day_before = window_first - timedelta(days=1)
        per_day = spend_by_project(
            organization=organization,
            start=min(period.start, local_midnight(day_before, billing)),
            end=period.end,
            by_day=True,
        )
        month = _by_project(
            per_day, period.start.astimezone(billing).date(), period.end.astimezone(billing).date()
        )
        recent = _by_project(per_day, window_first, window_end.astimezone(billing).date())
        firsts = _first_usage_by_project(
            organization,
            now=now,
            window_start=window_start,
            before={p for p, s in _by_project(per_day, day_before, window_first).items() if s[1]},
            recent={p for p, s in recent.items() if s[1]},
        )
        reserved = _reserved_by_budget(
            budget_ids=[b.pk for b in group], period=period.label, now=now
        )
        for budget in group:
            spend, requests, unpriced = _combine(month, budget.project_id)
            scope_firsts = (
                ([firsts[budget.project_id]] if budget.project_id in firsts else [])
                if budget.project_id
                else list(firsts.values())
            )
            forecast = forecast_projection(
                spend=spend,
                recent=_combine(recent, budget.project_id)[0],
                first=min(scope_firsts, default=None),
                period=period,
                now=now,
                window_start=window_start,
            )
            found[budget.pk] = _status(
                budget,
                period=period,
                now=now,
                spend=spend,
                requests=requests,
                unpriced=unpriced,
                reserved=reserved.get(budget.pk, Decimal(0)),
                forecast=forecast,
            )
    return [found[budget.pk] for budget in budgets]


def _status(budget: Budget, *, period, now, spend, requests, unpriced, reserved, forecast):
    amount = budget.amount
    percent = (spend * 100 / amount).quantize(_PERCENT, rounding=ROUND_HALF_UP)
    crossed = tuple(t for t in sorted(set(budget.thresholds)) if spend * 100 >= amount * t)
    if spend >= amount:
        state = EXCEEDED
    elif crossed or (forecast is not None and forecast > amount):
        state = WARNING
    else:
        state = OK
    return BudgetStatus(
        budget=budget,
        period=period,
        now=now,
        spend=spend,
        requests=requests,
        unpriced_requests=unpriced,
        reserved=reserved,
        remaining=amount - spend - reserved,
        forecast=forecast,
        percent=percent,
        thresholds_crossed=crossed,
        state=state,
    )


def budget_status(*, budget: Budget, now: datetime | None = None) -> BudgetStatus:
    """Spend, reservations, forecast and state of the budget's current period."""
    return budget_statuses(budgets=[budget], now=now)[0]


# --- Which budgets apply -----------------------------------------------------------------


def budgets_for_project(*, project) -> list[Budget]:
    """The project's own active budget and its organization's (one indexed query)."""
    return list(
        Budget.objects.filter(
            Q(project__isnull=True) | Q(project=project),
            organization_id=project.organization_id,
            is_active=True,
        )
        .select_related("organization", "project")
        .order_by("project_id")
    )


def _budget_ids_for_project(project) -> list[int]:
    """The ids alone, for the write path: one cheap query on the budgets' unique indexes."""
    return list(
        Budget.objects.filter(
            Q(project__isnull=True) | Q(project=project),
            organization_id=project.organization_id,
            is_active=True,
        ).values_list("pk", flat=True)
    )


# --- Writes (the pages) ------------------------------------------------------------------

BUDGET_FIELDS = ("amount", "thresholds", "hard_limit", "forecast_alert", "is_active")


def _audit_value(value):
    return str(value) if isinstance(value, Decimal) else value


def _save(budget: Budget) -> None:
    """full_clean then save; a lost race on the one-budget-per-scope constraint (two
    owners creating at once) becomes the same message as the check before it."""
    try:
        budget.full_clean()
        with transaction.atomic():  # a savepoint: the caller's transaction stays usable
            budget.save()
    except IntegrityError as exc:
        scope = "project" if budget.project_id else "organization"
        raise ValidationError(
            {"scope": f"This {scope} already has a budget: edit that one instead."}
        ) from exc
    except ValidationError as exc:
        errors = exc.message_dict
        if "__all__" in errors:  # the unique constraints (one budget per scope)
            errors.setdefault("scope", []).extend(errors.pop("__all__"))
        raise ValidationError(errors) from exc


@transaction.atomic
def budget_create(
    *,
    organization,
    project=None,
    amount: Decimal,
    thresholds: list[int],
    hard_limit: bool = False,
    forecast_alert: bool = True,
    actor=None,
    request=None,
) -> Budget:
    """A budget for the organization (``project`` None) or one of its projects; audited.
    Its first evaluation is queued after the commit (the month may already be spent)."""
    if project is not None and project.organization_id != organization.pk:
        raise ValidationError({"scope": "This project belongs to another organization."})
    budget = Budget(
        organization=organization,
        project=project,
        amount=amount,
        thresholds=thresholds,
        hard_limit=hard_limit,
        forecast_alert=forecast_alert,
    )
    _save(budget)
    audit_log(
        action="budget.create",
        actor=actor,
        organization=organization,
        project=project,
        target=budget,
        request=request,
        detail={f: _audit_value(getattr(budget, f)) for f in BUDGET_FIELDS},
    )
    transaction.on_commit(lambda: budget_evaluation_request(budget_ids=[budget.pk]), robust=True)
    return budget


@transaction.atomic
def budget_update(*, budget: Budget, changes: dict, actor=None, request=None) -> Budget:
    """Apply ``changes`` (fields of BUDGET_FIELDS), audit what changed; nothing written
    when nothing changed. Re-evaluated after the commit (a lower amount may cross)."""
    # of=self: the row to lock is the budget's; the project join is an outer one.
    budget = (
        Budget.objects.select_for_update(of=("self",))
        .select_related("organization", "project")
        .get(pk=budget.pk)
    )
    before = {f: getattr(budget, f) for f in BUDGET_FIELDS}
    for name, value in changes.items():
        if name not in BUDGET_FIELDS:
            raise ValueError(f"{name} is not a budget field this page changes.")
        setattr(budget, name, value)
    changed = {
        f: {"from": _audit_value(before[f]), "to": _audit_value(getattr(budget, f))}
        for f in BUDGET_FIELDS
        if before[f] != getattr(budget, f)
    }
    if not changed:
        return budget
    _save(budget)
    audit_log(
        action="budget.update",
        actor=actor,
        organization=budget.organization,
        project=budget.project,
        target=budget,
        request=request,
        detail=changed,
    )
    if budget.is_active:
        transaction.on_commit(
            lambda: budget_evaluation_request(budget_ids=[budget.pk]), robust=True
        )
    return budget


# --- Evaluation --------------------------------------------------------------------------


@dataclass(frozen=True)
class Evaluation:
    status: BudgetStatus
    new_alerts: tuple[BudgetAlert, ...]


def _scope_name(budget: Budget) -> str:
    if budget.project_id:
        return f"project {budget.project.name}"
    return f"organization {budget.organization.name}"


def _payload(status: BudgetStatus, *, kind: str, threshold: int | None) -> dict:
    budget = status.budget
    return {
        "budget": str(budget.public_id),
        "scope": "project" if budget.project_id else "organization",
        "organization": str(budget.organization.public_id),
        "project": str(budget.project.public_id) if budget.project_id else None,
        "period": status.period.label,
        "kind": kind,
        "threshold_percent": threshold,
        "amount_usd": str(budget.amount),
        "spend_usd": str(status.spend),
        "unpriced_requests": status.unpriced_requests,
        "percent": str(status.percent),
        "forecast_usd": str(status.forecast) if status.forecast is not None else None,
        "reserved_usd": str(status.reserved),
        "hard_limit": budget.hard_limit,
    }


def _threshold_message(status: BudgetStatus, threshold: int) -> tuple[str, str]:
    budget, scope = status.budget, _scope_name(status.budget)
    title = f"Budget {threshold}% reached: {scope} ({status.period.label})"
    body = (
        f"The {status.period.label} budget of {scope} is at {status.percent}%: "
        f"{status.spend_text} of {format_money(budget.amount)} "
        f"(threshold {threshold}%)."
    )
    if status.unpriced_requests:
        body += (
            f" {format_count(status.unpriced_requests)} unpriced call(s) have no known price "
            "and are not in the amount."
        )
    if budget.hard_limit and status.spend >= budget.amount:
        body += " The hard limit now refuses the console's own calls until next month."
    return title, body


def _forecast_message(status: BudgetStatus) -> tuple[str, str]:
    budget, scope = status.budget, _scope_name(status.budget)
    title = f"Budget forecast over: {scope} ({status.period.label})"
    body = (
        f"At the rate of the last 7 days, {scope} will spend about "
        f"{format_money(status.forecast)} by the end of {status.period.label}, over its "
        f"{format_money(budget.amount)} budget. So far: {status.spend_text} "
        f"({status.percent}%)."
    )
    return title, body


def _alert_once(status: BudgetStatus, *, kind: str, threshold: int) -> BudgetAlert | None:
    """The alert row if this call wrote it, None if it existed. Race: two evaluations
    at once both try; the unique constraint lets one insert, and get_or_create's
    savepoint turns the other's IntegrityError into a read of the winner's row."""
    alert, created = BudgetAlert.objects.get_or_create(
        budget=status.budget,
        period=status.period.label,
        kind=kind,
        threshold=threshold,
        defaults={
            "spend": status.spend,
            "projected": status.forecast,
            "unpriced_requests": status.unpriced_requests,
        },
    )
    return alert if created else None


def _enqueue(status: BudgetStatus, *, kind: str, stage: str, title: str, body: str, payload):
    budget = status.budget
    notifications_enqueue(
        organization=budget.organization,
        kind=kind,
        subject=f"budget:{budget.public_id}",
        period=status.period.label,
        stage=stage,
        title=title,
        body=body,
        payload=payload,
        project=budget.project,
    )


def budget_evaluate(*, budget_id: int, now: datetime | None = None) -> Evaluation | None:
    """Alert each threshold reached (and the forecast) once per period; idempotent.

    Returns None when the budget is gone or inactive. The alert rows and their
    notifications commit together: a crash between them leaves neither.
    """
    now = now or timezone.now()
    budget = (
        Budget.objects.select_related("organization", "project")
        .filter(pk=budget_id, is_active=True)
        .first()
    )
    if budget is None:
        return None
    status = budget_status(budget=budget, now=now)
    new: list[BudgetAlert] = []
    with transaction.atomic():
        for threshold in status.thresholds_crossed:
            alert = _alert_once(status, kind=BudgetAlert.Kind.THRESHOLD, threshold=threshold)
            if alert is None:
                continue
            new.append(alert)
            title, body = _threshold_message(status, threshold)
            _enqueue(
                status,
                kind="budget.threshold",
                stage=str(threshold),
                title=title,
                body=body,
                payload=_payload(status, kind="threshold", threshold=threshold),
            )
        if budget.forecast_alert and status.forecast_over:
            alert = _alert_once(status, kind=BudgetAlert.Kind.FORECAST, threshold=0)
            if alert is not None:
                new.append(alert)
                title, body = _forecast_message(status)
                _enqueue(
                    status,
                    kind="budget.forecast",
                    stage="forecast",
                    title=title,
                    body=body,
                    payload=_payload(status, kind="forecast", threshold=None),
                )
        Budget.objects.filter(pk=budget.pk).update(last_evaluated_at=now)
    return Evaluation(status=status, new_alerts=tuple(new))


def budgets_sweep(*, now: datetime | None = None) -> int:
    """Evaluate every active budget (what a lost task missed); idempotent. How many."""
    ids = list(Budget.objects.filter(is_active=True).order_by("pk").values_list("pk", flat=True))
    for budget_id in ids:
        budget_evaluate(budget_id=budget_id, now=now)
    return len(ids)


# --- The coalesced queue -----------------------------------------------------------------


def evaluation_flag(budget_id: int) -> str:
    return f"budget-eval:{budget_id}"


def budget_evaluation_request(*, budget_ids: Iterable[int]) -> int:
    """Queue one evaluation per budget unless one is already queued; how many were sent.

    ``cache.add`` is atomic in the shared cache (Redis in production): of any number of
    writers only one sets the flag and sends the task. The task deletes the flag before
    it evaluates, so usage that lands during an evaluation queues exactly one more. The
    countdown gathers a burst into one evaluation; the flag's timeout is the longest a
    lost task can hold the queue shut (the periodic sweep covers that gap).
    """
    sent = 0
    delay = settings.BUDGET_EVALUATION_DELAY_SECONDS
    ids = list(dict.fromkeys(budget_ids))
    if not ids:
        return 0
    # One round trip for the common case, every budget already queued; add() below stays
    # the atomic guard for the others.
    queued = cache.get_many([evaluation_flag(budget_id) for budget_id in ids])
    for budget_id in ids:
        flag = evaluation_flag(budget_id)
        if flag in queued:
            continue
        if not cache.add(flag, 1, timeout=delay + settings.BUDGET_EVALUATION_FLAG_SECONDS):
            continue
        try:
            current_app.tasks[EVALUATE_TASK].apply_async((budget_id,), countdown=delay)
        except BaseException:
            cache.delete(flag)  # not queued: let the next batch try again
            raise
        sent += 1
    return sent


def budget_evaluation_after_commit(*, project) -> None:
    """From the usage write paths, inside their transaction: after the commit, queue the
    evaluation of the budgets the new usage counts toward. ``robust``: the usage is
    committed whatever happens to the queue (a broker outage must not turn a stored
    batch into an error); a request that fails is logged and the sweep catches it."""
    transaction.on_commit(
        lambda: budget_evaluation_request(budget_ids=_budget_ids_for_project(project)),
        robust=True,
    )
