"""usage/reports.py against sums of the raw records: whole hours from the rollups, partial
hours (a :30 billing timezone's midnights) from the raw records, each call on its own
local day; exact money; unpriced counted apart; incomplete calls apart from errors."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from platformadmin.dashboard.ranges import local_midnight
from tests.factories import ProjectFactory
from usage.models import UsageRecord
from usage.reports import Figures, UsageScope, usage_per_day, usage_report, usage_totals
from usage.selectors import rollup_window
from usage.services import usage_record_create

pytestmark = pytest.mark.django_db

KOLKATA = ZoneInfo("Asia/Kolkata")  # UTC+5:30: every local midnight is 18:30 UTC


def _record(project, n, when, *, model="gpt-4.1", status="completed", error=""):
    return usage_record_create(
        project=project,
        source="ingest",
        model=model,
        response_id=f"r{n}",
        status=status,
        error_type=error,
        usage={"input_tokens": 1000 + n, "output_tokens": 10 * n},
        occurred_at=when,
    )[0]


def test_window_reads_split_hours_from_the_records():
    start = datetime(2026, 11, 1, 18, 30, tzinfo=UTC)
    end = datetime(2026, 11, 4, 18, 30, tzinfo=UTC)
    cuts = [datetime(2026, 11, d, 18, 30, tzinfo=UTC) for d in (2, 3)]
    window = rollup_window(start=start, end=end, cuts=cuts)
    assert window.has_edges
    assert "18:00" in str(window.hours) or "18, 0" in str(window.hours)
    whole = rollup_window(
        start=datetime(2026, 11, 1, tzinfo=UTC), end=datetime(2026, 11, 2, tzinfo=UTC)
    )
    assert not whole.has_edges and whole.hours is not None
    short = rollup_window(
        start=datetime(2026, 11, 1, 10, 5, tzinfo=UTC),
        end=datetime(2026, 11, 1, 10, 50, tzinfo=UTC),
    )
    assert short.hours is None and short.has_edges


def test_half_hour_timezone_days_are_exact(organization, project):
    organization.billing_timezone = "Asia/Kolkata"
    organization.save(update_fields=["billing_timezone"])
    other = ProjectFactory(organization=organization, name="Other")
    # Around the local midnight of 2/3 November (18:30 UTC on 2 November), in the same UTC hour.
    times = [
        datetime(2026, 11, 2, 18, 10, tzinfo=UTC),  # 23:40 on 2 November
        datetime(2026, 11, 2, 18, 29, 59, tzinfo=UTC),  # 23:59:59 on 2 November
        datetime(2026, 11, 2, 18, 30, tzinfo=UTC),  # 00:00 on 3 November
        datetime(2026, 11, 2, 18, 50, tzinfo=UTC),  # 00:20 on 3 November
        datetime(2026, 11, 1, 18, 29, tzinfo=UTC),  # 23:59 on 1 November: before the range
        datetime(2026, 11, 3, 9, 0, tzinfo=UTC),  # midday on 3 November
        datetime(2026, 11, 4, 18, 31, tzinfo=UTC),  # 00:01 on 5 November: after the range
    ]
    for n, when in enumerate(times):
        _record(project if n % 2 else other, n, when, model="gpt-4.1" if n % 3 else "gpt-4.1-mini")
    _record(project, 99, times[2] + timedelta(minutes=1), model="no-price-model")
    days = [date(2026, 11, 2), date(2026, 11, 3), date(2026, 11, 4)]
    scope = UsageScope(organization_id=organization.pk)
    series = usage_per_day(
        scope=scope,
        days=days,
        zone=KOLKATA,
        stack_by="project",
        day_start=lambda d: local_midnight(d, KOLKATA),
    )
    records = list(UsageRecord.objects.all())
    for row in series.days:
        mine = [r for r in records if r.occurred_at.astimezone(KOLKATA).date() == row.day]
        assert row.figures.requests == len(mine), row.day
        priced = [r.cost for r in mine if r.cost is not None]
        assert row.figures.cost == (sum(priced, Decimal(0)) if priced else None), row.day
        assert row.figures.unpriced_requests == sum(r.cost is None for r in mine)
    assert [row.figures.requests for row in series.days] == [2, 4, 0]

    start, end = local_midnight(days[0], KOLKATA), local_midnight(date(2026, 11, 5), KOLKATA)
    report = usage_report(scope=scope, start=start, end=end)
    inside = [r for r in records if start <= r.occurred_at < end]
    assert report.totals.requests == len(inside) == 6
    assert report.totals.priced_cost == sum((r.cost for r in inside if r.cost), Decimal(0))
    assert report.totals.unpriced_requests == 1
    assert report.totals.input_tokens == sum(r.input_tokens for r in inside)
    assert sum(row.figures.requests for row in report.by_model) == 6
    assert {row.key for row in report.by_project} == {project.pk, other.pk}
    shares = [row.share for row in report.by_project]
    assert sum(shares) == pytest.approx(Decimal(100), abs=Decimal("0.1"))


def test_incomplete_apart_from_errors_and_scope(organization, project):
    when = datetime(2026, 5, 10, 12, tzinfo=UTC)
    _record(project, 1, when)
    _record(project, 2, when, status="incomplete", error="stream_cut")
    _record(project, 3, when, status="incomplete")
    usage_record_create(
        project=project,
        source="ingest",
        model="gpt-4.1",
        status="failed",
        error_type="rate_limit",
        occurred_at=when,
    )
    other = ProjectFactory(organization=organization, name="Elsewhere")
    _record(other, 5, when)
    start, end = when - timedelta(days=1), when + timedelta(days=1)
    mine = usage_report(
        scope=UsageScope(organization_id=organization.pk, project_ids=(project.pk,)),
        start=start,
        end=end,
    )
    assert (mine.totals.requests, mine.totals.errors, mine.totals.incomplete) == (4, 1, 2)
    assert mine.totals.error_rate == Decimal("25.0")
    everything = usage_totals(
        scope=UsageScope(organization_id=organization.pk), start=start, end=end
    )
    assert everything.requests == 5


def test_figures_never_show_zero_for_unpriced():
    figures = Figures(requests=3, unpriced_requests=3)
    assert figures.cost is None and figures.cost_per_1k_requests is None
    figures = Figures(requests=4, unpriced_requests=1, priced_cost=Decimal("0.0003"))
    assert figures.cost == Decimal("0.0003")
    assert figures.cost_per_1k_requests == Decimal("0.1000000000")
    assert Figures().cache_hit_rate is None and Figures().tokens_per_call is None
