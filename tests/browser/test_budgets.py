"""Budget pages in Chromium: create with a refused then a good amount, the list with its
bars, the detail with alerts and their notifications, the edit form.
Screenshots: test-artifacts/budgets-*.png."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import time_machine

from tests.conftest import ensure_catalog
from tests.factories import ProjectFactory
from tests.usage.test_budgets import spend
from usage.budgets import budget_evaluate
from usage.models import Budget

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


# Mid-month (and ahead of the real clock, so the browser keeps the session cookie).
MID_MONTH = datetime(2027, 1, 15, 12, 0, tzinfo=UTC)


@pytest.fixture
def mid_month():
    with time_machine.travel(MID_MONTH):
        yield


def test_budget_pages(
    mid_month, page, live_server, login, screenshot, owner, organization, project
):
    ensure_catalog()
    research = ProjectFactory(organization=organization, name="Research")
    now = datetime.now(UTC)
    spend(project, Decimal("1.20"), now - timedelta(days=13), rid="b-prod-0")
    spend(project, Decimal("40"), now - timedelta(days=2), rid="b-prod-1")
    spend(project, 1, now - timedelta(hours=3), rid="b-prod-u", model="my-private-model")
    spend(research, Decimal("7.5"), now - timedelta(hours=30), rid="b-res-1")
    Budget.objects.create(organization=organization, project=research, amount=Decimal(5))
    login(owner)

    page.goto(f"{live_server.url}/usage/organizations/{organization.public_id}/budgets/new/")
    page.select_option("#id_scope", str(project.public_id))
    page.fill("#id_amount", "49.999")
    page.fill("#id_thresholds", "100, 50, 0")
    page.click("#budget-form button[type=submit]")
    page.wait_for_load_state("networkidle")
    errors = page.locator(".errorlist").all_inner_texts()
    assert any("at most 2 decimals" in e for e in errors), errors
    assert any("0% is out of range" in e for e in errors), errors
    screenshot("budgets-create-refused")

    page.fill("#id_amount", "50")
    page.fill("#id_thresholds", "80, 50, 100, 50")
    page.check("#id_hard_limit")
    page.click("#budget-form button[type=submit]")
    page.wait_for_load_state("networkidle")
    budget = Budget.objects.get(project=project)
    assert budget.thresholds == [50, 80, 100] and budget.hard_limit
    assert f"/usage/budgets/{budget.public_id}/" in page.url

    budget_evaluate(budget_id=budget.pk)
    page.reload()
    text = page.locator("#alert-list").inner_text()
    assert "50 % reached" in text and "80 % reached" in text
    assert "+ 1 unpriced call" in page.locator("#spend").inner_text()
    screenshot("budgets-detail")

    page.goto(f"{live_server.url}/usage/organizations/{organization.public_id}/budgets/")
    table = page.locator("#budgets").inner_text()
    assert "Project Production" in table and "Project Research" in table
    assert "over by $2.50" in table
    assert page.locator("meter.budget-bar").count() == 2
    screenshot("budgets-list")

    page.goto(f"{live_server.url}/usage/budgets/{budget.public_id}/edit/")
    assert page.input_value("#id_amount") == "50.00"
    screenshot("budgets-edit")
