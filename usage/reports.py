"""Aggregations for the usage dashboard: a scope (organization, optionally some of its
projects, one key, one model) over a range, from the rollups.

Every figure is read from the rollups (``UsageDaily`` for the whole local days of the
billing timezone, ``UsageHourly`` for the whole hours around them) and from the raw records
for the partial hours, by the one plan ``usage.daily.read_plan``.
The rollup reading lives in one private helper (``_rollup_groups``); incomplete calls
are counters of the rollups too, so no figure reads the raw records of a whole range.

Money stays exact: costs are summed as integers by the database and come back as
``Decimal``; rates and shares are computed in Python from those exact sums. Unpriced
calls are counted apart (``unpriced_requests``) and never folded in as $0: a cost is
``None`` when nothing in the group has a price.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, fields
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from functools import cached_property
from zoneinfo import ZoneInfo

from django.db.models import F, Q
from django.db.models.functions import Coalesce, TruncDate
from django.utils import timezone

from . import daily, rollup
from .fields import MONEY_QUANTUM
from .models import Budget, UsageRecord

COUNTERS = rollup.COUNTER_NAMES
MONEY_UNIT = MONEY_QUANTUM
# Group names a report may ask for, and the column each is read from on each table.
GROUPS = ("project", "key", "model", "day")
# Stacks beyond these in the per-day chart are summed as "Other" so the chart stays legible.
MAX_STACKS = 8
OTHER = "Other"


@dataclass(frozen=True)
class UsageScope:
    """What a report covers: an organization, restricted to ``project_ids`` when given
    (a project member who is not an organization member sees only their projects), and
    optionally one key (its id) and one model."""

    organization_id: int
    project_ids: tuple[int, ...] | None = None
    api_key_id: int | None = None
    model: str | None = None

    @cached_property
    def daily_zone(self) -> ZoneInfo | None:
        """The zone the organization's daily rollups are cut in (one query per scope: a
        page's panels share it)."""
        return daily.daily_zone(organization_id=self.organization_id)

    def hourly_q(self) -> Q:
        q = Q(organization_id=self.organization_id)
        if self.project_ids is not None:
            q &= Q(project_id__in=self.project_ids)
        if self.api_key_id is not None:
            q &= Q(key_slot=self.api_key_id)
        if self.model is not None:
            q &= Q(model=self.model)
        return q

    def record_q(self) -> Q:
        q = Q(organization_id=self.organization_id)
        if self.project_ids is not None:
            q &= Q(project_id__in=self.project_ids)
        if self.api_key_id is not None:
            q &= Q(api_key_id=self.api_key_id)
        if self.model is not None:
            q &= Q(model=self.model)
        return q


@dataclass
class Figures:
    """The counters of one group (or of the whole scope), with the rates people read.

    ``errors`` excludes incomplete calls (streams cut short), which are ``incomplete``."""

    requests: int = 0
    errors: int = 0
    incomplete: int = 0
    input_tokens: int = 0
    cached_input_tokens: int = 0
    output_tokens: int = 0
    reasoning_tokens: int = 0
    total_tokens: int = 0
    priced_cost: Decimal = field(default_factory=Decimal)
    unpriced_requests: int = 0

    def add(self, row: dict, prefix: str = "") -> None:
        """Add the rollup counters of ``row`` (``usage.rollup.COUNTERS`` by name, each
        name after ``prefix``). Runs once per rollup group of a page: kept to plain dict
        operations on a precomputed plan (``_add_plan``), no getattr/setattr per counter."""
        mine = self.__dict__
        for key, target, sign in _add_plan(prefix):
            value = row.get(key)
            if value:
                mine[target] += sign * value

    @classmethod
    def of(cls, numbers: Sequence) -> Figures:
        """The figures of one group's rollup counters, in ``usage.rollup.COUNTERS`` order
        (cost as money): ``incomplete_errors`` are taken back out of ``errors``."""
        (
            requests,
            errors,
            input_tokens,
            cached_input_tokens,
            output_tokens,
            reasoning_tokens,
            total_tokens,
            cost,
            unpriced_requests,
            incomplete,
            incomplete_errors,
        ) = numbers
        return cls(
            requests=requests,
            errors=errors - incomplete_errors,
            incomplete=incomplete,
            input_tokens=input_tokens,
            cached_input_tokens=cached_input_tokens,
            output_tokens=output_tokens,
            reasoning_tokens=reasoning_tokens,
            total_tokens=total_tokens,
            priced_cost=cost if isinstance(cost, Decimal) else Decimal(cost),
            unpriced_requests=unpriced_requests,
        )

    def merge(self, other: Figures) -> None:
        mine, theirs = self.__dict__, other.__dict__
        for name in _FIGURE_FIELDS:
            mine[name] += theirs[name]

    @property
    def cost(self) -> Decimal | None:
        """Spend of the priced calls; None when no call has a price (never a silent $0)."""
        return self.priced_cost if self.priced_requests else None

    @property
    def priced_requests(self) -> int:
        return self.requests - self.unpriced_requests

    @property
    def error_rate(self) -> Decimal | None:
        return _ratio(self.errors, self.requests)

    @property
    def incomplete_rate(self) -> Decimal | None:
        return _ratio(self.incomplete, self.requests)

    @property
    def cache_hit_rate(self) -> Decimal | None:
        """Share of input tokens served from the prompt cache (cached ⊂ input)."""
        return _ratio(self.cached_input_tokens, self.input_tokens)

    @property
    def cost_per_1k_requests(self) -> Decimal | None:
        """Cost per 1,000 priced calls (unpriced calls have no cost to spread)."""
        if not self.priced_requests:
            return None
        return (self.priced_cost * 1000 / self.priced_requests).quantize(
            MONEY_UNIT, rounding=ROUND_HALF_UP
        )

    @property
    def tokens_per_call(self) -> int | None:
        """Average tokens (input + output) per call, to the whole token."""
        if not self.requests:
            return None
        return int((Decimal(self.total_tokens) / self.requests).quantize(1, rounding=ROUND_HALF_UP))


_FIGURE_FIELDS = tuple(f.name for f in fields(Figures))
_ADD_PLANS: dict[str, tuple[tuple[str, str, int], ...]] = {}


def _add_plan(prefix: str) -> tuple[tuple[str, str, int], ...]:
    """(row key, Figures attribute, sign) per rollup counter: ``cost`` is summed into
    ``priced_cost``; ``incomplete_errors`` are taken back out of ``errors`` (the rollups
    count an incomplete call with an error type among the errors; here it is only
    incomplete)."""
    plan = _ADD_PLANS.get(prefix)
    if plan is None:
        entries = []
        for name in COUNTERS:
            if name == "cost":
                entries.append((prefix + name, "priced_cost", 1))
            elif name == "incomplete_errors":
                entries.append((prefix + name, "errors", -1))
            else:
                entries.append((prefix + name, name, 1))
        plan = _ADD_PLANS[prefix] = tuple(entries)
    return plan


def _ratio(part: int, whole: int) -> Decimal | None:
    """``part / whole`` as a percentage with one decimal; None when ``whole`` is 0."""
    if not whole:
        return None
    return (Decimal(part) * 100 / whole).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP)


@dataclass
class GroupRow:
    """One project, key or model of a top list: its figures and its share of the cost."""

    key: int | str
    figures: Figures
    share: Decimal | None = None  # percent of the scope's priced cost


@dataclass
class DayRow:
    """One local day of the per-day chart: cost per stack (None: only unpriced calls)."""

    day: date
    stacks: dict[str, Decimal | None]
    figures: Figures


@dataclass
class UsageReport:
    """The overview's panels for one scope and range."""

    start: datetime
    end: datetime
    totals: Figures
    by_project: list[GroupRow]
    by_key: list[GroupRow]
    by_model: list[GroupRow]

    def top(self, group: str, limit: int = 10) -> list[GroupRow]:
        return getattr(self, f"by_{group}")[:limit]


# --- reading the rollups (the two helpers a daily rollup would re-route) ---------------


def _columns(by: Sequence[str], zone: ZoneInfo | None) -> tuple[dict, dict]:
    """The grouping expressions on UsageHourly and on UsageRecord, by group name."""
    hourly: dict = {}
    records: dict = {}
    for name in by:
        if name == "project":
            hourly["g_project"], records["g_project"] = F("project_id"), F("project_id")
        elif name == "key":
            hourly["g_key"] = F("key_slot")
            records["g_key"] = Coalesce("api_key_id", rollup.NO_KEY_SLOT)
        elif name == "model":
            hourly["g_model"], records["g_model"] = F("model"), F("model")
        elif name == "day":
            hourly["g_day"] = TruncDate("hour", tzinfo=zone)
            records["g_day"] = TruncDate("occurred_at", tzinfo=zone)
        else:
            raise ValueError(f"unknown group {name!r}: one of {', '.join(GROUPS)}")
    return hourly, records


def _rollup_sums(
    *,
    scope: UsageScope,
    start: datetime,
    end: datetime,
    by: Sequence[str],
    zone: ZoneInfo | None = None,
    cuts: Iterable[datetime] = (),
    counters: Sequence[str] = COUNTERS,
) -> dict[tuple, list]:
    """The counters of [start, end) grouped ``by``, as lists in ``usage.rollup.COUNTERS``
    order (cost as money; counters not asked for stay 0): the whole local days from the
    daily rollups and the whole hours around them from the hourly ones (one query),
    partial hours (range edges, ``cuts`` inside an hour) from the raw records (one query,
    only when there are any), by ``usage.daily.read_plan``. ``zone``: the timezone of
    ``day``. Lists, not Figures, so a page folds thousands of groups cheaply."""
    zone = zone or timezone.get_current_timezone()
    plan = daily.read_plan(
        start=start,
        end=end,
        daily_zone=scope.daily_zone,
        group_zone=zone if "day" in by else None,
        cuts=cuts,
    )
    hourly_cols, record_cols = _columns(by, zone)
    names = [f"g_{name}" for name in by]
    fields = [f"s_{c}" for c in COUNTERS]
    out: dict[tuple, list] = {}

    def add(key: tuple, values: list) -> None:
        numbers = out.get(key)
        if numbers is None:
            out[key] = values
        else:
            for i, value in enumerate(values):
                numbers[i] += value

    def fold(rows: Iterable[dict]) -> None:
        for row in rows:
            add(tuple([row[n] for n in names]), [row.get(f) or 0 for f in fields])

    if plan.days is not None or plan.window.hours is not None:
        # The rollups' sums come keyed (day or None, *the other groups): put them in the
        # order of ``by`` and their counters in COUNTERS order.
        others = [n for n in by if n != "day"]
        order = [0 if n == "day" else 1 + others.index(n) for n in by]
        where = [COUNTERS.index(c) for c in counters]
        width = len(COUNTERS)
        for key, numbers in daily.rollup_sums(
            scope=scope.hourly_q(),
            plan=plan,
            columns={f"g_{n}": hourly_cols[f"g_{n}"] for n in others},
            day="day" in by,
            zone=zone,
            counters=counters,
        ).items():
            values = [0] * width
            for i, value in zip(where, numbers, strict=True):
                values[i] = value
            add(tuple([key[i] for i in order]), values)
    if plan.window.has_edges:
        edges = UsageRecord.objects.filter(scope.record_q(), plan.window.edges)
        sums = rollup.orm_aggregates("s_")
        if names:
            fold(edges.annotate(**record_cols).values(*names).annotate(**sums).order_by())
        else:  # the scope's totals: one row (empty groups sum to nothing)
            row = edges.aggregate(**sums)
            fold([row] if row["s_requests"] else [])
    return out


def _rollup_groups(**kwargs) -> dict[tuple, Figures]:
    """``_rollup_sums`` as Figures, one per group."""
    return {key: Figures.of(numbers) for key, numbers in _rollup_sums(**kwargs).items()}


# --- reports --------------------------------------------------------------------------


def scope_budget(*, scope: UsageScope) -> Budget | None:
    """The active budget a page of this scope measures its month against: the
    organization's for the whole organization, the project's for one project; None for
    a key, a model, or several projects short of the whole organization (a project member
    must not read the organization's budget, whose spend covers projects they cannot see)."""
    if scope.api_key_id is not None or scope.model is not None:
        return None
    budgets = Budget.objects.filter(organization_id=scope.organization_id, is_active=True)
    if scope.project_ids is None:
        return budgets.filter(project__isnull=True).select_related("organization").first()
    if len(scope.project_ids) == 1:
        return (
            budgets.filter(project_id=scope.project_ids[0])
            .select_related("organization", "project")
            .first()
        )
    return None


def _ranked(groups: dict[tuple, Figures], total_cost: Decimal) -> list[GroupRow]:
    rows = [
        GroupRow(
            key=key[0],
            figures=figures,
            share=_share(figures.priced_cost, total_cost) if figures.cost is not None else None,
        )
        for key, figures in groups.items()
    ]
    rows.sort(key=lambda r: (-r.figures.priced_cost, -r.figures.requests, str(r.key)))
    return rows


def _share(part: Decimal, whole: Decimal) -> Decimal | None:
    if not whole:
        return None
    return (part * 100 / whole).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP)


# The counters of a money figure: requests, priced cost, unpriced calls.
MONEY_COUNTERS = ("requests", "cost", "unpriced_requests")


def usage_totals(
    *, scope: UsageScope, start: datetime, end: datetime, counters: Sequence[str] = COUNTERS
) -> Figures:
    """The scope's counters over [start, end) in one query (plus one for partial hours):
    the month-to-date figure beside a budget (incomplete calls apart, as everywhere).
    ``counters``: ``MONEY_COUNTERS`` when only the money is shown."""
    return _rollup_groups(scope=scope, start=start, end=end, by=(), counters=counters).get(
        (), Figures()
    )


def usage_report(*, scope: UsageScope, start: datetime, end: datetime) -> UsageReport:
    """Totals and the top projects, keys and models of the scope over [start, end).

    Queries: one on the rollups grouped by project, key and model together (plus one for
    partial hours when the range has any), summed here into the three tables: the
    rollup rows of the range are read once, not once per table (a key uses a few models,
    so there are about as many groups as keys). Incomplete calls are rollup counters too.
    The totals are the sum of the per-project groups, so they agree with every table."""
    fine = _rollup_sums(scope=scope, start=start, end=end, by=("project", "key", "model"))
    by_project: dict[tuple, list] = {}
    by_key: dict[tuple, list] = {}
    by_model: dict[tuple, list] = {}
    for (project, key, model), numbers in fine.items():
        for groups, group in ((by_project, project), (by_key, key), (by_model, model)):
            target = groups.get((group,))
            if target is None:
                groups[(group,)] = list(numbers)
            else:
                for i, value in enumerate(numbers):
                    target[i] += value
    by_project_f = {k: Figures.of(v) for k, v in by_project.items()}
    totals = Figures()
    for figures in by_project_f.values():
        totals.merge(figures)
    by_key_f = {k: Figures.of(v) for k, v in by_key.items()}
    by_model_f = {k: Figures.of(v) for k, v in by_model.items()}
    return UsageReport(
        start=start,
        end=end,
        totals=totals,
        by_project=_ranked(by_project_f, totals.priced_cost),
        by_key=_ranked(by_key_f, totals.priced_cost),
        by_model=_ranked(by_model_f, totals.priced_cost),
    )


@dataclass
class DailySeries:
    """Spend per local day, stacked: ``stacks`` names the series (top ``MAX_STACKS`` by
    cost, then ``Other``), ``days`` one row per day of the range, even empty ones."""

    stack_by: str
    stacks: list[str | int]
    days: list[DayRow]


def usage_per_day(
    *,
    scope: UsageScope,
    days: Sequence[date],
    zone: ZoneInfo,
    stack_by: str,
    day_start: Callable[[date], datetime],
    counters: Sequence[str] = COUNTERS,
) -> DailySeries:
    """Cost per local day of ``days`` (consecutive), stacked by ``project``, ``model`` or
    ``key`` (the key's rollup slot; 0 for calls without a key).

    ``day_start(day)`` gives a day's first instant in UTC (its local midnight): the days'
    boundaries are passed to the window rule as cuts, so on a :30 timezone the hours a
    midnight falls inside are read from the raw records and each call lands on its own
    local day. One query on the rollups (plus the partial hours, if any). ``counters``:
    the day figures' counters (``MONEY_COUNTERS`` for a chart of money).
    """
    if stack_by not in ("project", "model", "key"):
        raise ValueError("stack_by: project, model or key")
    start = day_start(days[0])
    end = day_start(days[-1] + timedelta(days=1))
    cuts = [day_start(d) for d in days[1:]]
    groups = _rollup_groups(
        scope=scope,
        start=start,
        end=end,
        by=("day", stack_by),
        zone=zone,
        cuts=cuts,
        counters=counters,
    )
    per_stack: dict = {}
    for (_, stack), figures in groups.items():
        per_stack[stack] = per_stack.get(stack, Decimal(0)) + figures.priced_cost
    ranked = sorted(per_stack, key=lambda s: (-per_stack[s], str(s)))
    kept = ranked[:MAX_STACKS] if len(ranked) <= MAX_STACKS + 1 else ranked[: MAX_STACKS - 1]
    kept_set = set(kept)
    stacks: list = list(kept) + ([OTHER] if len(kept) < len(ranked) else [])
    rows = {d: DayRow(day=d, stacks={}, figures=Figures()) for d in days}
    for (day, stack), figures in groups.items():
        row = rows.get(day)
        if row is None:  # cannot happen: the range is these days
            continue
        name = stack if stack in kept_set else OTHER
        row.figures.merge(figures)
        previous = row.stacks.get(name)
        cost = figures.cost
        if cost is not None:
            row.stacks[name] = (previous or Decimal(0)) + cost
        elif name not in row.stacks:
            row.stacks[name] = None
    return DailySeries(stack_by=stack_by, stacks=stacks, days=[rows[d] for d in days])
