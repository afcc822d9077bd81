"""Budget periods in the billing timezone, status and forecast (usage/budgets.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import time_machine

from tests.factories import ProjectFactory
from usage.budgets import (
    EXCEEDED,
    OK,
    WARNING,
    budget_period,
    budget_status,
    budget_statuses,
    budgets_for_project,
)
from usage.fields import quantize_money
from usage.models import Budget, BudgetReservation
from usage.services import usage_record_create

pytestmark = pytest.mark.django_db

# gpt-5.5 input is $5 per 1M tokens: 200,000 input tokens cost exactly $1.
ONE_DOLLAR = 200_000


def spend(project, dollars: int | Decimal, when: datetime, *, rid: str, model="gpt-5.5"):
    """A record of ``dollars`` (whole multiples of $0.000005) at ``when``."""
    tokens = int(Decimal(dollars) * ONE_DOLLAR)
    record, created = usage_record_create(
        project=project,
        source="ingest",
        model=model,
        response_id=rid,
        occurred_at=when,
        usage={
            "input_tokens": tokens,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": 0,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": tokens,
        },
    )
    assert created
    return record


def set_zone(organization, zone: str):
    organization.billing_timezone = zone
    organization.save(update_fields=["billing_timezone"])
    return organization


# --- Periods --------------------------------------------------------------------------


def test_a_period_is_the_local_calendar_month_in_los_angeles(organization):
    set_zone(organization, "America/Los_Angeles")
    # 2026-12-01 07:30 UTC is still 2026-11-30 23:30 in Los Angeles (PST, UTC-8).
    period = budget_period(organization=organization, now=datetime(2026, 12, 1, 7, 30, tzinfo=UTC))
    assert period.label == "2026-11"
    assert period.start == datetime(2026, 11, 1, 7, 0, tzinfo=UTC)  # PDT ended on Nov 1 at 2:00
    assert period.end == datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
    later = budget_period(organization=organization, now=datetime(2026, 12, 1, 8, 0, tzinfo=UTC))
    assert later.label == "2026-12" and later.start == period.end


def test_a_period_is_the_local_calendar_month_in_tokyo(organization):
    set_zone(organization, "Asia/Tokyo")
    # 2026-11-30 15:00 UTC is already 2026-12-01 00:00 in Tokyo (UTC+9, no DST).
    period = budget_period(organization=organization, now=datetime(2026, 11, 30, 15, 0, tzinfo=UTC))
    assert period.label == "2026-12"
    assert period.start == datetime(2026, 11, 30, 15, 0, tzinfo=UTC)
    assert period.end == datetime(2026, 12, 31, 15, 0, tzinfo=UTC)
    before = budget_period(
        organization=organization, now=datetime(2026, 11, 30, 14, 59, 59, tzinfo=UTC)
    )
    assert before.label == "2026-11" and before.end == period.start


def test_a_period_across_a_dst_change_has_its_two_offsets(organization):
    set_zone(organization, "America/Los_Angeles")
    # March 2026: PST (UTC-8) at the start, PDT (UTC-7) from March 8 onwards.
    period = budget_period(organization=organization, now=datetime(2026, 3, 15, tzinfo=UTC))
    assert period.start == datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
    assert period.end == datetime(2026, 4, 1, 7, 0, tzinfo=UTC)
    assert period.end - period.start == timedelta(days=31) - timedelta(hours=1)


def test_an_unknown_timezone_falls_back_to_utc(organization):
    set_zone(organization, "Mars/Olympus_Mons")
    period = budget_period(organization=organization, now=datetime(2026, 5, 31, 23, tzinfo=UTC))
    assert (period.label, period.start) == ("2026-05", datetime(2026, 5, 1, tzinfo=UTC))


# --- Spend of the period ----------------------------------------------------------------


def test_spend_at_2330_local_on_the_last_day_counts_in_that_month(organization, project):
    """Los Angeles, across the end of daylight saving (Nov 1) and the month end: a call
    at 23:30 local on Nov 30 (07:30 UTC on Dec 1) is November's, one 31 minutes later
    December's."""
    set_zone(organization, "America/Los_Angeles")
    budget = Budget.objects.create(organization=organization, amount=Decimal(100))
    spend(project, 3, datetime(2026, 11, 1, 7, 0, tzinfo=UTC), rid="first-minute-of-nov")
    spend(project, 5, datetime(2026, 12, 1, 7, 30, tzinfo=UTC), rid="nov-30-2330-local")
    spend(project, 7, datetime(2026, 12, 1, 8, 1, tzinfo=UTC), rid="dec-1-0001-local")
    spend(project, 11, datetime(2026, 11, 1, 6, 59, tzinfo=UTC), rid="oct-31-2359-local")
    november = budget_status(budget=budget, now=datetime(2026, 12, 1, 7, 59, tzinfo=UTC))
    assert november.period.label == "2026-11"
    assert november.spend == Decimal(8)
    december = budget_status(budget=budget, now=datetime(2026, 12, 1, 9, 0, tzinfo=UTC))
    assert (december.period.label, december.spend) == ("2026-12", Decimal(7))


def test_spend_in_tokyo_changes_month_at_local_midnight(organization, project):
    set_zone(organization, "Asia/Tokyo")
    budget = Budget.objects.create(organization=organization, project=project, amount=Decimal(10))
    spend(project, 2, datetime(2026, 11, 30, 14, 30, tzinfo=UTC), rid="nov-30-2330-tokyo")
    spend(project, 4, datetime(2026, 11, 30, 15, 30, tzinfo=UTC), rid="dec-1-0030-tokyo")
    status = budget_status(budget=budget, now=datetime(2026, 11, 30, 16, 0, tzinfo=UTC))
    assert (status.period.label, status.spend) == ("2026-12", Decimal(4))


def test_status_counts_unpriced_calls_apart_and_states(organization, project):
    budget = Budget.objects.create(
        organization=organization, project=project, amount=Decimal(100), thresholds=[50, 80, 100]
    )
    now = datetime(2026, 7, 20, 12, tzinfo=UTC)
    spend(project, 40, now - timedelta(days=15), rid="a")
    spend(project, 1, now - timedelta(days=15), rid="u1", model="my-private-model")
    spend(project, 1, now - timedelta(days=14), rid="u2", model="my-private-model")
    status = budget_status(budget=budget, now=now)
    assert (status.spend, status.unpriced_requests, status.requests) == (Decimal(40), 2, 3)
    assert status.state == OK and status.thresholds_crossed == ()
    assert status.spend_text == "$40.00 + 2 unpriced calls"
    spend(project, Decimal("42.5"), now - timedelta(days=14), rid="b")
    status = budget_status(budget=budget, now=now)
    assert status.thresholds_crossed == (50, 80) and status.state == WARNING
    assert status.percent == Decimal("82.5")
    spend(project, Decimal("17.5"), now - timedelta(days=1), rid="c")
    status = budget_status(budget=budget, now=now)
    assert status.thresholds_crossed == (50, 80, 100) and status.state == EXCEEDED
    assert status.remaining == Decimal(0) and status.over_by == Decimal(0)


def test_open_reservations_are_held_against_what_remains(organization, project):
    budget = Budget.objects.create(organization=organization, project=project, amount=Decimal(10))
    now = datetime(2026, 7, 20, 12, tzinfo=UTC)
    spend(project, 2, now - timedelta(hours=3), rid="a")
    common = {"budget": budget, "period": "2026-07"}
    BudgetReservation.objects.create(
        **common, amount=Decimal("1.25"), expires_at=now + timedelta(minutes=5)
    )
    BudgetReservation.objects.create(  # settled: the recorded cost counts instead
        **common, amount=Decimal(3), expires_at=now + timedelta(minutes=5), settled_at=now
    )
    BudgetReservation.objects.create(  # expired: its call died
        **common, amount=Decimal(4), expires_at=now - timedelta(seconds=1)
    )
    BudgetReservation.objects.create(  # last month's
        budget=budget, period="2026-06", amount=Decimal(5), expires_at=now + timedelta(hours=1)
    )
    status = budget_status(budget=budget, now=now)
    assert status.reserved == Decimal("1.25")
    assert status.remaining == Decimal("6.75")


def test_the_organization_budget_counts_every_project(organization, project):
    other = ProjectFactory(organization=organization, name="Research")
    org_budget = Budget.objects.create(organization=organization, amount=Decimal(100))
    project_budget = Budget.objects.create(
        organization=organization, project=project, amount=Decimal(10)
    )
    now = datetime(2026, 7, 20, 12, tzinfo=UTC)
    spend(project, 3, now - timedelta(days=2), rid="p")
    spend(other, 4, now - timedelta(days=2), rid="o")
    by_org, by_project = budget_statuses(budgets=[org_budget, project_budget], now=now)
    assert (by_org.spend, by_project.spend) == (Decimal(7), Decimal(3))
    assert {b.pk for b in budgets_for_project(project=project)} == {
        org_budget.pk,
        project_budget.pk,
    }
    assert [b.pk for b in budgets_for_project(project=other)] == [org_budget.pk]


# --- Forecast -------------------------------------------------------------------------------


def test_forecast_projects_the_last_seven_days_to_the_month_end(organization, project):
    budget = Budget.objects.create(organization=organization, project=project, amount=Decimal(100))
    now = datetime(2026, 7, 21, 0, 0, tzinfo=UTC)  # 11 days left in July (UTC)
    spend(project, 10, datetime(2026, 7, 2, tzinfo=UTC), rid="early")  # before the window
    for day in range(8):  # $2 a day, from the day before the 7-day window on
        spend(project, 2, now - timedelta(days=day, hours=12), rid=f"d{day}")
    status = budget_status(budget=budget, now=now)
    assert status.spend == Decimal(26)
    assert status.forecast == Decimal(26) + Decimal(14) / 7 * 11  # $48.00, exact
    assert not status.forecast_over and status.state == OK


def test_forecast_over_the_amount_makes_a_warning(organization, project):
    budget = Budget.objects.create(
        organization=organization, project=project, amount=Decimal(25), thresholds=[90]
    )
    now = datetime(2026, 7, 21, 0, 0, tzinfo=UTC)
    spend(project, 1, datetime(2026, 7, 1, 12, tzinfo=UTC), rid="old")
    # Idle for over a week, then $6 since 3 days ago: $2 a day from here on.
    spend(project, 6, now - timedelta(days=3), rid="recent")
    status = budget_status(budget=budget, now=now)
    assert status.forecast == Decimal(7) + Decimal(2) * 11
    assert status.thresholds_crossed == ()
    assert status.forecast_over and status.state == WARNING


def test_with_under_a_day_of_data_there_is_no_forecast(organization, project):
    budget = Budget.objects.create(organization=organization, project=project, amount=Decimal(10))
    now = datetime(2026, 7, 10, 12, 0, tzinfo=UTC)
    spend(project, 5, now - timedelta(hours=20), rid="new")
    assert budget_status(budget=budget, now=now).forecast is None
    assert budget_status(budget=budget, now=now + timedelta(hours=6)).forecast is not None


def test_a_new_project_is_projected_from_the_days_it_has(organization, project):
    """Three days of data: the rate is their spend / 3, not / 7."""
    budget = Budget.objects.create(organization=organization, project=project, amount=Decimal(100))
    now = datetime(2026, 7, 21, 0, 0, tzinfo=UTC)
    spend(project, 6, now - timedelta(days=3), rid="start")  # hour-aligned: exactly 3 days
    status = budget_status(budget=budget, now=now)
    assert status.forecast == Decimal(6) + Decimal(2) * 11


def test_an_old_and_a_new_project_each_get_their_own_history(organization, project):
    """The first-usage read in two parts (the day before the window; the window for the
    projects new in it): the old project's window is full, the new one's three days, and
    the organization's budget takes the oldest of them."""
    new = ProjectFactory(organization=organization, name="New")
    now = datetime(2026, 7, 21, 0, 0, tzinfo=UTC)
    old_budget = Budget.objects.create(
        organization=organization, project=project, amount=Decimal(100)
    )
    new_budget = Budget.objects.create(organization=organization, project=new, amount=Decimal(100))
    org_budget = Budget.objects.create(organization=organization, amount=Decimal(1000))
    spend(project, 7, now - timedelta(days=7, hours=12), rid="old-edge")  # before the window
    spend(project, 14, now - timedelta(days=2), rid="old-recent")
    spend(new, 6, now - timedelta(days=3), rid="new-start")
    old, fresh, whole = budget_statuses(budgets=[old_budget, new_budget, org_budget], now=now)
    assert old.forecast == Decimal(21) + Decimal(14) / 7 * 11
    assert fresh.forecast == Decimal(6) + Decimal(6) / 3 * 11
    assert whole.forecast == quantize_money(Decimal(27) + Decimal(20) / 7 * 11)


def test_the_window_and_the_month_are_local_days_of_the_billing_timezone(organization, project):
    """New York: the window starts at local midnight 7 days before today and the month
    counts every call stamped in it, one a skewed clock put later today too."""
    organization.billing_timezone = "America/New_York"
    organization.save()
    budget = Budget.objects.create(organization=organization, project=project, amount=Decimal(100))
    now = datetime(2026, 7, 21, 2, 0, tzinfo=UTC)  # 22:00 on July 20 in New York (EDT)
    spend(project, 8, datetime(2026, 7, 13, 0, 0, tzinfo=UTC), rid="day-before")  # Jul 12 local
    spend(project, 14, datetime(2026, 7, 18, 12, 0, tzinfo=UTC), rid="in-window")
    spend(project, 2, now + timedelta(hours=1), rid="skewed")  # 23:00 local, after now
    status = budget_status(budget=budget, now=now)
    assert status.spend == Decimal(24)
    # Window: Jul 13 00:00 EDT (04:00 UTC) to now = 7 days 22 h; its spend $16; the month
    # ends Aug 1 00:00 EDT, 11 days 2 h after now: 24 + 16 / (190/24) x (266/24) = 46.40.
    assert status.forecast == Decimal("46.40")


def test_a_half_hour_zone_without_its_daily_rows_reads_exactly_too(organization, project):
    """The daily rollups cut in UTC while the organization bills in Kolkata (+5:30; its
    rebuild never ran): no daily row serves those days, the hourly rollups and the raw
    records of the split hours give the same month and window."""
    budget = Budget.objects.create(organization=organization, project=project, amount=Decimal(100))
    now = datetime(2026, 7, 21, 6, 0, tzinfo=UTC)  # 11:30 on July 21 in Kolkata
    spend(project, 3, datetime(2026, 6, 30, 18, 20, tzinfo=UTC), rid="june")  # 23:50 Jun 30
    spend(project, 5, datetime(2026, 6, 30, 18, 40, tzinfo=UTC), rid="july")  # 00:10 Jul 1
    spend(project, 4, datetime(2026, 7, 12, 18, 20, tzinfo=UTC), rid="before")  # Jul 12 local
    spend(project, 7, datetime(2026, 7, 13, 18, 40, tzinfo=UTC), rid="window")  # Jul 14 local
    type(organization).objects.filter(pk=organization.pk).update(billing_timezone="Asia/Kolkata")
    organization.refresh_from_db()
    budget.refresh_from_db()
    status = budget_status(budget=budget, now=now)
    assert (status.spend, status.requests) == (Decimal(16), 3)
    # Window from Jul 14 00:00 IST (Jul 13 18:30 UTC) to now: 179.5 h, $7 in it; no usage
    # on Jul 13 (the day before), so the first hour in the window starts the history, and
    # it is before the window's start: the whole 179.5 h. Left: to Aug 1 00:00 IST, 252.5 h.
    assert status.forecast == quantize_money(
        Decimal(16) + Decimal(7) * Decimal("252.5") / Decimal("179.5")
    )


def test_status_reads_the_clock_when_no_time_is_given(organization, project):
    budget = Budget.objects.create(organization=organization, project=project, amount=Decimal(10))
    with time_machine.travel(datetime(2026, 9, 14, 9, tzinfo=UTC), tick=False):
        spend(project, 1, datetime(2026, 9, 14, 8, tzinfo=UTC), rid="morning")
        status = budget_status(budget=budget)
    assert (status.period.label, status.spend) == ("2026-09", Decimal(1))


def test_the_list_costs_the_same_queries_for_one_budget_or_five(
    organization, django_assert_num_queries
):
    projects = [ProjectFactory(organization=organization, name=f"P{i}") for i in range(4)]
    Budget.objects.create(organization=organization, amount=Decimal(100))
    for p in projects:
        Budget.objects.create(organization=organization, project=p, amount=Decimal(10))
    now = datetime(2026, 7, 20, 12, 30, tzinfo=UTC)
    for i, p in enumerate(projects):
        spend(p, i + 1, now - timedelta(days=2, minutes=10), rid=f"r{i}")
    budgets = list(Budget.objects.select_related("organization", "project").order_by("pk"))
    # Per organization: its daily-rollup zone, one read of the spend per project and
    # local day (the day before the forecast window to the month's end: whole days, no raw
    # edge), the first hour of the projects new in the window (all four here), and the
    # reservations.
    with django_assert_num_queries(4):
        statuses = budget_statuses(budgets=budgets, now=now)
    with django_assert_num_queries(4):
        budget_statuses(budgets=budgets[:1], now=now)
    assert [s.spend for s in statuses] == [Decimal(10), 1, 2, 3, 4]
