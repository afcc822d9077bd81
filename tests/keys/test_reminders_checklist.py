"""The project checklist's rotation row follows the reminders' rule (keys/reminders.py):
green while no key is within 14 days of its due date, amber from its first reminder, red
once a key is overdue; the expiry counts when it comes sooner."""

from __future__ import annotations

import datetime as dt

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext

from platformadmin.checklist import project_checklist
from tests.factories import ProjectFactory, make_api_key

pytestmark = pytest.mark.django_db

ROW = "Keys rotated within the period"
CREATED = dt.datetime(2026, 9, 1, 12, 0, tzinfo=dt.UTC)


def row(project, now):
    return {r.title: r for r in project_checklist(project=project, now=now)}[ROW]


@pytest.fixture
def tokyo_project(organization):
    organization.billing_timezone = "Asia/Tokyo"
    organization.save()
    return ProjectFactory(organization=organization, rotation_period_days=30)


def test_green_then_amber_from_the_first_reminder_then_red_when_overdue(tokyo_project):
    with time_machine.travel(CREATED, tick=False):
        key = make_api_key(tokyo_project)
    due = CREATED + dt.timedelta(days=30)  # 2026-10-01 21:00 in Tokyo
    first_reminder = dt.datetime(2026, 9, 17, 0, 0, tzinfo=dt.timezone(dt.timedelta(hours=9)))
    assert row(tokyo_project, CREATED).status == "pass"
    assert row(tokyo_project, first_reminder - dt.timedelta(minutes=1)).status == "pass"
    amber = row(tokyo_project, first_reminder)
    assert amber.status == "warn" and key.hint in amber.why and "2026-10-01" in amber.why
    assert row(tokyo_project, due - dt.timedelta(minutes=1)).status == "warn"
    assert row(tokyo_project, due).status == "fail"


def test_an_expiry_sooner_than_the_period_turns_it_amber(tokyo_project):
    with time_machine.travel(CREATED, tick=False):
        make_api_key(tokyo_project, expires_at=CREATED + dt.timedelta(days=5))
    assert row(tokyo_project, CREATED).status == "warn"
    assert row(tokyo_project, CREATED + dt.timedelta(days=5)).status == "fail"


def test_the_row_costs_no_query_per_key(tokyo_project):
    def queries(n: int) -> int:
        with time_machine.travel(CREATED, tick=False):
            for _ in range(n):
                make_api_key(tokyo_project)
        with CaptureQueriesContext(connection) as ctx:
            project_checklist(project=tokyo_project, now=CREATED)
        return len(ctx.captured_queries)

    assert queries(2) == queries(20)
