"""OpenAI's usage and costs pulled into their tables, and reconciled with what was logged."""

from __future__ import annotations

from datetime import UTC, timedelta
from decimal import Decimal

import pytest
from django.utils import timezone
from openai import OpenAI

from keys.services import api_key_replace_secret
from platformadmin.openai.results import GenerateParams
from platformadmin.openai.services import generate
from platformadmin.sync.models import SyncRun, UpstreamCostBucket, UpstreamUsageBucket
from platformadmin.sync.services import reconciliation, reconciliation_gaps, usage_pull

pytestmark = pytest.mark.django_db


def _through_console(linked, n: int) -> None:
    for i in range(n):
        outcome = generate(
            api_key=linked.api_key,
            project=linked.project,
            params=GenerateParams(model="gpt-4.1-mini", input=f"question {i}"),
        )
        assert outcome.ok, outcome.message


def _around_console(linked, n: int) -> None:
    """An application that calls OpenAI with the project's key and reports nothing."""
    client = OpenAI(api_key=linked.upstream_key["value"], base_url=linked.simulator.base_url)
    for i in range(n):
        client.responses.create(model="gpt-4.1-mini", input=f"unreported {i} " * 20)
    client.close()


def _today():
    return timezone.now().astimezone(UTC).date()


def test_a_reconciliation_with_everything_reported_shows_no_difference(linked):
    _through_console(linked, 3)
    run = usage_pull(organization=linked.organization, days=3)
    assert run.status == SyncRun.Status.SUCCEEDED, run.report
    rows = reconciliation(organization=linked.organization, since=_today(), until=_today())
    assert len(rows) == 1
    row = rows[0]
    assert row.project == linked.project and row.model == "gpt-4.1-mini"
    assert row.upstream_requests == row.logged_requests == 3
    assert row.upstream_cost > 0
    assert row.cost_difference == 0 and row.token_difference == 0
    assert row.provisional
    assert reconciliation_gaps(rows) == []


def test_an_application_that_does_not_report_is_flagged_for_that_project_and_day(linked, settings):
    settings.RECONCILIATION_GAP_MIN_USD = (
        "0.000001"  # the simulator's calls cost fractions of a cent
    )
    _through_console(linked, 1)
    _around_console(linked, 4)
    usage_pull(organization=linked.organization, days=1)
    rows = reconciliation(organization=linked.organization, since=_today(), until=_today())
    (row,) = rows
    assert row.upstream_requests == 5 and row.logged_requests == 1
    assert row.cost_difference < 0 and row.cost_share < -50
    (gap,) = reconciliation_gaps(rows)
    assert gap.project == linked.project and gap.day == _today()
    assert gap.missing == row.upstream_cost - row.logged_cost
    settings.RECONCILIATION_GAP_MIN_USD = "0.01"
    assert reconciliation_gaps(rows) == []  # below the dollar threshold: not flagged


def test_a_second_pull_with_nothing_changed_changes_nothing(linked):
    _through_console(linked, 2)
    first = usage_pull(organization=linked.organization, days=2)
    stored = sorted(UpstreamUsageBucket.objects.values_list("pk", "requests"))
    second = usage_pull(organization=linked.organization, days=2)
    assert first.report["changed"] is True
    assert second.report["changed"] is False and second.report["unchanged"] is True
    assert sorted(UpstreamUsageBucket.objects.values_list("pk", "requests")) == stored


def test_pulls_follow_every_page(linked):
    _through_console(linked, 1)
    run = usage_pull(organization=linked.organization, days=40)
    assert run.status == SyncRun.Status.SUCCEEDED
    pages = [e for e in linked.simulator.log if e["path"] == "/v1/organization/usage/completions"]
    assert len(pages) == 2  # 31 daily buckets a page
    items = set(UpstreamCostBucket.objects.filter(day=_today()).values_list("line_item", flat=True))
    assert {"gpt-4.1-mini, input", "gpt-4.1-mini, output"} <= items
    assert sum(UpstreamCostBucket.objects.values_list("amount", flat=True), Decimal(0)) > 0


def test_a_wrong_admin_key_fails_the_run_with_a_message_and_no_secret(linked):
    bad = "sk-admin-fault-401-" + "x" * 20
    api_key_replace_secret(api_key=linked.admin_key, secret=bad)
    run = usage_pull(organization=linked.organization, days=1)
    assert run.status == SyncRun.Status.FAILED
    (error,) = run.report["errors"]
    assert "401" in error and "admin key" in error and bad not in error


def test_an_organization_without_an_admin_key_is_told_how_to_fix_it(organization):
    run = usage_pull(organization=organization, days=1, now=timezone.now() - timedelta(days=1))
    assert run.status == SyncRun.Status.FAILED
    assert "no admin key" in run.report["errors"][0]
