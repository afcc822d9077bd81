"""Selectors: month-to-date spend in the billing timezone, unpriced counts, recent usage."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from usage.selectors import (
    billing_month_start,
    organization_spend_month_to_date,
    organization_spend_summary,
    project_has_recent_usage,
    project_usage_summary,
)
from usage.services import usage_record_create

pytestmark = pytest.mark.django_db


def record(project, rid, when, model="gpt-4.1", inp=1_000_000, out=0):
    return usage_record_create(
        project=project,
        source="ingest",
        model=model,
        response_id=rid,
        usage={"input_tokens": inp, "output_tokens": out},
        occurred_at=when,
    )[0]


def test_nothing_recorded_is_none(organization):
    assert (
        organization_spend_month_to_date(
            organization=organization, now=datetime(2026, 7, 15, tzinfo=UTC)
        )
        is None
    )


def test_month_to_date_in_the_billing_timezone(organization, project):
    organization.billing_timezone = "Asia/Kolkata"  # UTC+5:30: the month starts at 18:30 UTC
    organization.save()
    start = billing_month_start(organization=organization, now=datetime(2026, 7, 15, tzinfo=UTC))
    assert start == datetime(2026, 6, 30, 18, 30, tzinfo=UTC)
    record(project, "before", datetime(2026, 6, 30, 18, 29, tzinfo=UTC))  # June in Kolkata
    record(project, "edge", datetime(2026, 6, 30, 18, 45, tzinfo=UTC))  # partial first hour
    record(project, "inside", datetime(2026, 7, 10, 9, 0, tzinfo=UTC))
    record(project, "unpriced", datetime(2026, 7, 10, 9, 5, tzinfo=UTC), model="tts-1")
    now = datetime(2026, 7, 15, 12, 20, tzinfo=UTC)
    record(project, "now-ish", datetime(2026, 7, 15, 12, 10, tzinfo=UTC))  # partial last hour
    # Stamped after now by a skewed clock: spend of this month all the same, as the budgets
    # and their hard limit count it; August in Kolkata is not.
    record(project, "skewed", datetime(2026, 7, 15, 12, 30, tzinfo=UTC))
    record(project, "august", datetime(2026, 7, 31, 18, 30, tzinfo=UTC))
    assert organization_spend_month_to_date(organization=organization, now=now) == Decimal(8)
    summary = organization_spend_summary(organization=organization, now=now)
    assert (summary.requests, summary.unpriced_requests) == (5, 1)


def test_only_unpriced_records_are_not_zero_spend_silently(organization, project):
    record(project, "u", datetime(2026, 7, 2, tzinfo=UTC), model="gpt-image-1")
    summary = organization_spend_summary(
        organization=organization, now=datetime(2026, 7, 3, tzinfo=UTC)
    )
    assert summary.unpriced_requests == 1 and summary.cost == Decimal(0)


def test_other_organizations_do_not_count(organization, other_organization, project):
    from tests.factories import ProjectFactory

    record(ProjectFactory(organization=other_organization), "x", datetime(2026, 7, 2, tzinfo=UTC))
    assert (
        organization_spend_month_to_date(
            organization=organization, now=datetime(2026, 7, 3, tzinfo=UTC)
        )
        is None
    )


def test_recent_usage(project):
    when = datetime(2026, 7, 2, tzinfo=UTC)
    assert not project_has_recent_usage(project=project, since=when - timedelta(days=1))
    usage_record_create(
        project=project,
        source="playground",
        model="gpt-5.5",
        status="error",
        error_type="APITimeoutError",
        occurred_at=when,
    )
    assert project_has_recent_usage(project=project, since=when - timedelta(days=1))
    assert not project_has_recent_usage(project=project, since=when + timedelta(seconds=1))


def test_project_usage_summary_by_model(project):
    when = datetime(2026, 7, 2, 3, tzinfo=UTC)
    record(project, "a", when)
    record(project, "b", when, model="gpt-4.1-nano", inp=0, out=1_000_000)
    record(project, "c", when, model="tts-1")
    s = project_usage_summary(
        project=project, since=when - timedelta(days=1), until=when + timedelta(days=1)
    )
    assert s.totals["requests"] == 3 and s.totals["cost"] == Decimal("2.4")
    assert s.has_unpriced
    assert {m["model"]: m["cost"] for m in s.by_model} == {
        "gpt-4.1": Decimal(2),
        "gpt-4.1-nano": Decimal("0.4"),
        "tts-1": Decimal(0),
    }
