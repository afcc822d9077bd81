"""The hard limit in Chromium: the playground shows the budget's spend, reservations and what
is left; a call that fits goes and the panel shows the new figures; one that does not is
refused with the budget message and never sent."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from tests.conftest import ensure_catalog
from tests.platformadmin.helpers import sim_key
from usage.models import Budget, BudgetReservation
from usage.reservations import budget_period
from usage.services import usage_record_create

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def _catalog(transactional_db):
    ensure_catalog()


def test_the_playground_under_a_hard_limit(
    page, login, live_server, member, project, openai_simulator, screenshot
):
    budget = Budget.objects.create(
        organization=project.organization, project=project, amount=Decimal(50), hard_limit=True
    )
    usage_record_create(  # an application reported $49.20 through the ingestion API
        project=project,
        source="ingest",
        model="gpt-5.4-mini",
        occurred_at=(timezone.now() - timedelta(minutes=5)).isoformat(),
        usage={"input_tokens": 0, "output_tokens": 10_933_333, "total_tokens": 10_933_333},
    )
    label = budget_period(organization=project.organization, now=timezone.now()).label
    BudgetReservation.objects.create(  # a call in flight elsewhere
        budget=budget,
        period=label,
        amount=Decimal("0.40"),
        expires_at=timezone.now() + timedelta(minutes=10),
    )
    key = sim_key(project, openai_simulator, name="browser key")
    login(member)
    page.goto(f"{live_server.url}/playground/?project={project.public_id}")
    table = page.locator("#budget-form")
    assert "Budget of Production" in table.text_content()
    assert table.locator(".budget-spent").text_content().strip() == "$49.20"
    assert table.locator(".budget-reserved").text_content().strip() == "$0.40"
    assert table.locator(".budget-left").text_content().strip() == "$0.40"
    screenshot("playground-hard-limit")

    page.select_option("#id_api_key", str(key.public_id))
    page.select_option("#id_model", "gpt-5.4-mini")
    page.fill("#id_input", "One sentence about budgets, please.")
    page.fill("#id_max_output_tokens", "1000")  # worst case about $0.0045: fits
    page.click("#run-button")
    page.wait_for_selector("#result-details", timeout=15_000)
    assert page.text_content("#result-status") == "completed"
    assert page.locator("#budget-result .budget-reserved").text_content().strip() == "$0.40"
    screenshot("playground-hard-limit-call")

    page.fill("#id_max_output_tokens", "100000")  # worst case $0.45: more than is left
    page.click("#run-button")
    page.wait_for_selector("#result-details[data-status=refused]", timeout=15_000)
    message = page.text_content("#result-message")
    assert message.startswith(f"Budget of Production for {label}: $49.20 spent + $0.40 reserved")
    assert "of $50.00; this call could cost up to $0.45. Raise the budget" in message
    screenshot("playground-hard-limit-refused")
    sent = [e for e in openai_simulator.log if e["path"].endswith("/responses")]
    assert len(sent) == 1
