"""The checklist's budget row (platformadmin/checklist.py) from the budgets."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from platformadmin.checklist import NOT_CONFIGURED, PASS, project_checklist
from tests.usage.test_budgets import spend
from usage.models import Budget

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 7, 20, 12, 0, tzinfo=UTC)


def budget_row(project, **kwargs):
    rows = {r.title: r for r in project_checklist(project=project, now=NOW, **kwargs)}
    return rows["Budget with alerts"]


def test_without_a_budget_the_row_is_not_configured_and_links_to_create(project):
    row = budget_row(project)
    assert row.status == NOT_CONFIGURED
    assert f"?project={project.public_id}" in row.fix_url
    assert budget_row(project, can_manage=False).fix_url == ""


def test_an_inactive_budget_does_not_count(organization, project):
    Budget.objects.create(organization=organization, amount=Decimal(10), is_active=False)
    assert budget_row(project).status == NOT_CONFIGURED


def test_the_organization_budget_turns_it_green_without_showing_its_spend(organization, project):
    Budget.objects.create(organization=organization, amount=Decimal(900), thresholds=[80])
    spend(project, 300, NOW - timedelta(days=1), rid="a")
    row = budget_row(project)
    assert row.status == PASS
    assert "The organization's budget of $900.00" in row.why and "$300" not in row.why
    assert "/budgets/" in row.fix_url


def test_the_project_budget_shows_spend_against_the_amount(organization, project):
    Budget.objects.create(organization=organization, project=project, amount=Decimal(500))
    spend(project, Decimal("412.50"), NOW - timedelta(days=1), rid="a")
    spend(project, 1, NOW - timedelta(days=1), rid="u", model="my-own-model")
    row = budget_row(project)
    assert row.status == PASS
    assert "Project budget: $412.50 + 1 unpriced call of $500.00 (82.5%) in 2026-07" in row.why
    assert "alerts at 50, 80, 100%" in row.why
