"""The hard limit: a console call's worst-case cost held against its budgets while it runs.

Before a console call, ``budget_reserve`` takes every active hard-limit budget covering the
project (its own and its organization's), locks their rows in primary-key order, and adds
the period's spend (the one spend rule, ``usage.selectors``) and the open reservations to
the call's worst case (``worst_case_cost``). Over the amount: refused, nothing written.
Otherwise one ``BudgetReservation`` per budget, in the same transaction, so two processes
racing for the last room cannot both pass (the second waits on the row lock and then sees
the first's reservation). After the call its usage record is written, then
``budget_reservation_settle`` marks the reservations settled: the recorded cost is in the
spend from then on. A reservation whose process died stops counting at ``expires_at``.

Fail closed: when the budget state cannot be read (a lock held beyond
``BUDGET_LOCK_TIMEOUT_MS``, a lost connection, any database error), the call is refused with
a message saying why. Calls reported through the ingestion API are not reserved (they have
already happened) but they are spend, so they trip the limit for the console's own calls.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.db.models import Q, Sum
from django.utils import timezone

from platformadmin.templatetags.console_format import format_count, format_money

from .models import Budget, BudgetReservation
from .pricing import PriceBook, Usage, compute_cost
from .selectors import billing_month, project_spend_month_to_date, spend_by_project

log = logging.getLogger("usage.reservations")

# Tokens the Responses API adds around the messages (role and turn markers) on top of the
# text itself; generous, so the bound holds.
INPUT_OVERHEAD_TOKENS = 32


@dataclass(frozen=True)
class Period:
    """A budget month: [start, end) in UTC, labelled "YYYY-MM" in the billing timezone."""

    start: datetime
    end: datetime
    label: str


def budget_period(*, organization, now: datetime) -> Period:
    """The calendar month of ``now`` in the organization's billing timezone.

    Built on ``usage.selectors.billing_month`` (the one month rule). The label is read
    half a month after the start: midnight of the 1st local is within 14 hours of the UTC
    start whatever the zone, so the UTC date then is always inside the local month.
    """
    start, end = billing_month(organization=organization, now=now)
    return Period(start=start, end=end, label=(start + timedelta(days=15)).strftime("%Y-%m"))


@dataclass(frozen=True)
class BudgetRoom:
    """One hard-limit budget's state in a period: what is spent, held and left."""

    budget: Budget
    scope: str  # the project's or the organization's name
    period: str
    amount: Decimal
    spend: Decimal
    unpriced_requests: int
    reserved: Decimal

    @property
    def remaining(self) -> Decimal:
        return max(self.amount - self.spend - self.reserved, Decimal(0))

    @property
    def state(self) -> str:
        """For the page's badge: nothing left (fail), under a tenth left (warn), else ok."""
        if not self.remaining:
            return "fail"
        return "warn" if self.remaining * 10 < self.amount else "ok"

    def fits(self, cost: Decimal) -> bool:
        return self.spend + self.reserved + cost <= self.amount

    def describe(self) -> str:
        """ "Budget of Production for 2026-12: $49.20 spent + $0.40 reserved of $50.00"."""
        unpriced = (
            f" (+ {format_count(self.unpriced_requests)} unpriced calls not counted)"
            if self.unpriced_requests
            else ""
        )
        return (
            f"Budget of {self.scope} for {self.period}: {format_money(self.spend)} spent"
            f"{unpriced} + {format_money(self.reserved)} reserved of {format_money(self.amount)}"
        )


@dataclass(frozen=True)
class ReservationResult:
    """What ``budget_reserve`` decided. ``rooms``: every budget's state before this call's
    reservation; ``binding``: the budget that refused, else the one with least left."""

    allowed: bool
    amount: Decimal
    message: str = ""
    error_type: str = ""
    reservation_ids: tuple[int, ...] = ()
    rooms: tuple[BudgetRoom, ...] = field(default_factory=tuple)
    binding: BudgetRoom | None = None

    @property
    def budget(self) -> Budget | None:
        return self.binding.budget if self.binding else None

    @property
    def spend(self) -> Decimal | None:
        return self.binding.spend if self.binding else None

    @property
    def reserved(self) -> Decimal | None:
        return self.binding.reserved if self.binding else None

    @property
    def remaining(self) -> Decimal | None:
        return self.binding.remaining if self.binding else None


class BudgetUnavailable(Exception):
    """The budget state could not be read; the message says why and what to do."""


def _hard_limit_budgets(*, project):
    return Budget.objects.filter(
        Q(project_id=project.pk) | Q(project__isnull=True, organization_id=project.organization_id),
        is_active=True,
        hard_limit=True,
    ).order_by("pk")


def hard_limit_budgets(*, project) -> list[Budget]:
    """The active hard-limit budgets covering ``project`` (its own, its organization's), one
    query; the pre-call hook asks this first so a project without one pays nothing more."""
    return list(_hard_limit_budgets(project=project))


def _scope_name(budget: Budget, project) -> str:
    return project.name if budget.project_id else project.organization.name


def _reserved_by_budget(*, budget_ids: list[int], period: str, now: datetime) -> dict:
    rows = (
        BudgetReservation.objects.filter(
            budget_id__in=budget_ids, period=period, settled_at__isnull=True, expires_at__gt=now
        )
        .values("budget_id")
        .annotate(total=Sum("amount"))
        .order_by()
    )
    return {row["budget_id"]: row["total"] or Decimal(0) for row in rows}


def _rooms(*, budgets: list[Budget], project, now: datetime) -> list[BudgetRoom]:
    """Each budget's spend in its period and what is held against it (the state the hard
    limit compares with; read under the row locks in ``budget_reserve``)."""
    if not budgets:
        return []
    period = budget_period(organization=project.organization, now=now)
    # Spend over the whole month, not up to ``now``: a call that finished a moment after
    # this one started has already settled its reservation, so its record must count here,
    # whatever time (the upstream's clock) it carries (``billing_month``).
    reserved = _reserved_by_budget(budget_ids=[b.pk for b in budgets], period=period.label, now=now)
    if any(not b.project_id for b in budgets):
        # The organization's budget: its spend grouped by project answers both budgets in
        # one read (two queries), the project's spend being its own row.
        by_project = spend_by_project(
            organization=project.organization, start=period.start, end=period.end
        )
        spent = {
            None: (
                sum((s.cost or Decimal(0) for s in by_project.values()), Decimal(0)),
                sum(s.unpriced_requests for s in by_project.values()),
            )
        }
        own = by_project.get(project.pk)
        spent[project.pk] = (own.cost or Decimal(0), own.unpriced_requests) if own else (0, 0)
    else:
        own = project_spend_month_to_date(project=project, now=now)
        spent = {project.pk: (own.cost or Decimal(0), own.unpriced_requests)}
    rooms = []
    for budget in budgets:
        cost, unpriced = spent[budget.project_id]
        rooms.append(
            BudgetRoom(
                budget=budget,
                scope=_scope_name(budget, project),
                period=period.label,
                amount=budget.amount,
                spend=Decimal(cost),
                unpriced_requests=unpriced,
                reserved=reserved.get(budget.pk, Decimal(0)),
            )
        )
    return rooms


def budget_rooms(*, project, now: datetime | None = None) -> list[BudgetRoom]:
    """The hard-limit budgets of ``project`` with spend, open reservations and what is left
    (for the playground page; no lock). Raises ``DatabaseError`` as any read does."""
    now = now or timezone.now()
    return _rooms(budgets=hard_limit_budgets(project=project), project=project, now=now)


def worst_case_cost(
    *, project, model: str, prompt_bytes: int, max_output_tokens: int, now: datetime | None = None
) -> Decimal | None:
    """The most a call can cost, by the usage app's one price rule (``usage.pricing``):

    - input: every token of OpenAI's byte-level encodings covers at least one byte, so the
      prompt's UTF-8 length plus ``INPUT_OVERHEAD_TOKENS`` bounds the input tokens; all of
      them at the uncached input price;
    - output: ``max_output_tokens`` (reasoning tokens are part of it) at the output price.

    None when the model has no input or output price in force for the organization: the
    worst case cannot be bounded.
    """
    now = now or timezone.now()
    book = PriceBook(organization_id=project.organization_id, model_ids=[model])
    input_tokens = max(0, int(prompt_bytes)) + INPUT_OVERHEAD_TOKENS
    output_tokens = max(0, int(max_output_tokens))
    usage = Usage(
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        total_tokens=input_tokens + output_tokens,
    )
    return compute_cost(usage, book.price_for(model, now))


def _ttl(project) -> timedelta:
    """How long a reservation holds: the setting, or longer when the project's own timeout
    and retries can keep one call waiting longer than that."""
    longest_call = project.request_timeout_seconds * (project.max_retries + 1) + 60
    return timedelta(seconds=max(settings.BUDGET_RESERVATION_TTL_SECONDS, longest_call))


def _lock_timeout() -> None:
    """Bound the wait for another transaction's lock on the budget rows (PostgreSQL; SQLite
    waits its connection ``timeout``): past it the call is refused, never left hanging."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            # SET LOCAL: this transaction only; a pooled connection goes back unchanged.
            cursor.execute(
                "SELECT set_config('lock_timeout', %s, true)",
                [f"{int(settings.BUDGET_LOCK_TIMEOUT_MS)}ms"],
            )


def _unavailable_message(project, exc: DatabaseError) -> str:
    cause = getattr(exc, "__cause__", None)
    sqlstate = getattr(cause, "sqlstate", None)
    if sqlstate == "55P03" or "locked" in str(exc).lower():
        why = (
            "its row stayed locked by other transactions (another change, or a queue of "
            f"concurrent calls) for more than {format_count(settings.BUDGET_LOCK_TIMEOUT_MS)} ms"
        )
    else:
        why = f"the database answered {type(exc).__name__}"
    return (
        f"The hard-limit budget of {project.name} could not be read ({why}), so this call "
        "was refused and not sent: the limit cannot be checked. Try again in a moment; if it "
        "keeps happening, an operator should check the database."
    )


def budget_reserve(*, project, amount: Decimal, now: datetime | None = None) -> ReservationResult:
    """Hold ``amount`` (a call's worst case) against every hard-limit budget of ``project``,
    or refuse naming the budget that has no room; fail closed when the state cannot be read.

    One transaction: the budget rows are locked in primary-key order (``SELECT … FOR
    UPDATE`` on PostgreSQL; SQLite's IMMEDIATE write transaction serializes the whole
    block), so concurrent calls are checked one after the other against spend + every
    reservation already committed. Nothing is written on a refusal.
    """
    now = now or timezone.now()
    amount = Decimal(amount)
    try:
        with transaction.atomic():
            _lock_timeout()
            # Race: the lock is what makes "read spend + reservations, then insert" safe
            # across processes; every reader of the same budgets queues here.
            budgets = list(_hard_limit_budgets(project=project).select_for_update(of=("self",)))
            rooms = _rooms(budgets=budgets, project=project, now=now)
            for room in rooms:
                if not room.fits(amount):
                    return ReservationResult(
                        allowed=False,
                        amount=amount,
                        message=_refusal_message(room, amount),
                        error_type="BudgetExceeded",
                        rooms=tuple(rooms),
                        binding=room,
                    )
            created = BudgetReservation.objects.bulk_create(
                [
                    BudgetReservation(
                        budget=room.budget,
                        period=room.period,
                        amount=amount,
                        expires_at=now + _ttl(project),
                    )
                    for room in rooms
                ]
            )
    except DatabaseError as exc:
        # Fail closed: nothing was written (the block rolled back) and nothing is sent.
        log.warning(
            "budget state of project %s unreadable, call refused: %s: %s",
            project.public_id,
            type(exc).__name__,
            exc,
        )
        return ReservationResult(
            allowed=False,
            amount=amount,
            message=_unavailable_message(project, exc),
            error_type="BudgetUnavailable",
        )
    binding = min(rooms, key=lambda r: r.remaining) if rooms else None
    return ReservationResult(
        allowed=True,
        amount=amount,
        reservation_ids=tuple(r.pk for r in created),
        rooms=tuple(rooms),
        binding=binding,
    )


def _refusal_message(room: BudgetRoom, amount: Decimal) -> str:
    if room.spend >= room.amount:
        fix = "The budget is used up: raise it, or wait for the next period."
    elif room.spend + room.reserved >= room.amount:
        fix = "Calls in flight hold the rest: try again when they finish, or raise the budget."
    else:
        fix = "Raise the budget or lower max output tokens."
    return f"{room.describe()}; this call could cost up to {format_money(amount)}. {fix}"


def budget_reservation_settle(*, reservation_ids, now: datetime | None = None) -> int:
    """Mark reservations settled: their call's usage record is written, so its cost is in
    the spend now (or the call was never sent). Idempotent: only open rows change."""
    ids = [int(i) for i in reservation_ids]
    if not ids:
        return 0
    return BudgetReservation.objects.filter(pk__in=ids, settled_at__isnull=True).update(
        settled_at=now or timezone.now()
    )


def budget_reserved(*, budget: Budget, period: str, now: datetime | None = None) -> Decimal:
    """What the open reservations (unsettled, unexpired) hold against ``budget`` in
    ``period``: the "reserved" figure every budget page shows."""
    now = now or timezone.now()
    return _reserved_by_budget(budget_ids=[budget.pk], period=period, now=now).get(
        budget.pk, Decimal(0)
    )


def _reservations_purge_cutoff(now: datetime | None) -> datetime | None:
    days = int(settings.BUDGET_RESERVATION_RETENTION_DAYS)
    if days <= 0:
        return None  # 0 keeps every reservation (as USAGE_RAW_RETENTION_DAYS does)
    return (now or timezone.now()) - timedelta(days=days)


def _purgeable(cutoff: datetime) -> Q:
    """Finished before ``cutoff``: settled then, or never settled and expired then. An open
    unexpired reservation matches neither (its ``expires_at`` is after now > cutoff)."""
    return Q(settled_at__lt=cutoff) | Q(settled_at__isnull=True, expires_at__lt=cutoff)


def budget_reservations_purge(
    *, now: datetime | None = None, batch_size: int = 5000, max_batches: int | None = None
) -> int:
    """Delete reservations settled or expired more than ``BUDGET_RESERVATION_RETENTION_DAYS``
    ago, in batches (one row per call per budget piles up otherwise); how many went.

    Each batch is its own short transaction, so ``budget_reserve``'s row locks on the budgets
    never wait on a long delete. Kept rows: every open unexpired one (it holds room under the
    hard limit right now) and the recent ones (what was held, for an investigation).
    """
    cutoff = _reservations_purge_cutoff(now)
    if cutoff is None:
        return 0
    deleted = 0
    batches = 0
    last_pk = 0
    while max_batches is None or batches < max_batches:
        ids = list(
            BudgetReservation.objects.filter(_purgeable(cutoff), pk__gt=last_pk)
            .order_by("pk")
            .values_list("pk", flat=True)[:batch_size]
        )
        if not ids:
            break
        last_pk = ids[-1]
        with transaction.atomic():
            # Race: a late settle of an expired row (budget_reservation_settle) may have
            # stamped it since the read; the condition again keeps that row for its days.
            count, _ = BudgetReservation.objects.filter(_purgeable(cutoff), pk__in=ids).delete()
        deleted += count
        batches += 1
    return deleted
