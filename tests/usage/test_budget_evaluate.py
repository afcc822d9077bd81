"""Budget evaluation: each threshold once per period, the forecast once, the notifications
they cause written with them, unpriced calls named (usage/budgets.py)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import time_machine
from django.db import connection, connections

from platformadmin.notifications.models import Notification
from tests.factories import UserFactory, add_project_member
from tests.usage.test_budgets import spend
from usage.budgets import budget_evaluate, budgets_sweep
from usage.models import Budget, BudgetAlert

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 7, 20, 12, 0, tzinfo=UTC)


@pytest.fixture
def budget(organization, project, owner):
    return Budget.objects.create(
        organization=organization,
        project=project,
        amount=Decimal(500),
        thresholds=[50, 80, 100],
        forecast_alert=False,
    )


def alerts(budget) -> list[tuple]:
    return list(
        BudgetAlert.objects.filter(budget=budget)
        .order_by("period", "kind", "threshold")
        .values_list("period", "kind", "threshold")
    )


def test_each_threshold_is_alerted_once_across_evaluations(budget, project):
    spend(project, 260, NOW - timedelta(days=10), rid="a")
    first = budget_evaluate(budget_id=budget.pk, now=NOW)
    assert [a.threshold for a in first.new_alerts] == [50]
    channels = Notification.objects.filter(subject=f"budget:{budget.public_id}").count()
    assert channels == 2  # the organization's default channels: the bell and owners' e-mail
    again = budget_evaluate(budget_id=budget.pk, now=NOW)  # the same instant
    later = budget_evaluate(budget_id=budget.pk, now=NOW + timedelta(hours=1))
    assert again.new_alerts == () and later.new_alerts == ()
    spend(project, 160, NOW + timedelta(hours=2), rid="b")  # $420: 84 %
    crossed = budget_evaluate(budget_id=budget.pk, now=NOW + timedelta(hours=3))
    assert [a.threshold for a in crossed.new_alerts] == [80]
    for _ in range(3):
        assert budget_evaluate(budget_id=budget.pk, now=NOW + timedelta(hours=4)).new_alerts == ()
    assert alerts(budget) == [("2026-07", "threshold", 50), ("2026-07", "threshold", 80)]
    rows = Notification.objects.filter(subject=f"budget:{budget.public_id}")
    assert rows.count() == 4
    assert sorted(rows.values_list("stage", flat=True)) == ["50", "50", "80", "80"]
    assert set(rows.values_list("kind", "period")) == {("budget.threshold", "2026-07")}
    budget.refresh_from_db()
    assert budget.last_evaluated_at == NOW + timedelta(hours=4)


def test_a_jump_past_every_threshold_alerts_each_once(budget, project):
    spend(project, 600, NOW - timedelta(days=1), rid="big")
    result = budget_evaluate(budget_id=budget.pk, now=NOW)
    assert [a.threshold for a in result.new_alerts] == [50, 80, 100]
    assert budget_evaluate(budget_id=budget.pk, now=NOW).new_alerts == ()
    assert len(alerts(budget)) == 3


def test_a_new_period_alerts_again(budget, project):
    spend(project, 300, NOW - timedelta(days=1), rid="july")
    budget_evaluate(budget_id=budget.pk, now=NOW)
    august = datetime(2026, 8, 10, tzinfo=UTC)
    assert budget_evaluate(budget_id=budget.pk, now=august).new_alerts == ()  # nothing spent
    spend(project, 251, august - timedelta(days=1), rid="august")
    result = budget_evaluate(budget_id=budget.pk, now=august)
    assert [(a.period, a.threshold) for a in result.new_alerts] == [("2026-08", 50)]


def test_the_alert_names_spend_amount_percent_period_and_unpriced_calls(budget, project):
    spend(project, Decimal("412.50"), NOW - timedelta(days=3), rid="priced")
    for i in range(37):
        spend(project, 1, NOW - timedelta(days=2), rid=f"u{i}", model="my-private-model")
    budget_evaluate(budget_id=budget.pk, now=NOW)
    alert = BudgetAlert.objects.get(budget=budget, threshold=80)
    assert (alert.spend, alert.unpriced_requests) == (Decimal("412.50"), 37)
    note = Notification.objects.filter(stage="80").first()
    assert "$412.50 + 37 unpriced calls" in note.body
    assert "of $500.00" in note.body and "82.5%" in note.body and "2026-07" in note.body
    assert "80%" in note.title and "Production" in note.title
    assert (
        Decimal(note.payload["spend_usd"]) == Decimal("412.50")
        and note.payload["unpriced_requests"] == 37
    )
    assert note.payload["period"] == "2026-07" and note.payload["threshold_percent"] == 80


def test_project_owners_are_recipients_of_a_project_budget(budget, project, owner):
    lead = UserFactory(username="lead", email="lead@example.com")
    add_project_member(lead, project, "owner")
    spend(project, 300, NOW - timedelta(days=1), rid="a")
    budget_evaluate(budget_id=budget.pk, now=NOW)
    note = Notification.objects.filter(channel__kind="email").get()
    emails = {r.get("email") for r in note.recipients}
    assert {owner.email, "lead@example.com"} <= emails


def test_the_forecast_is_alerted_once_per_period(organization, project):
    budget = Budget.objects.create(
        organization=organization, project=project, amount=Decimal(100), thresholds=[90]
    )
    spend(project, 1, datetime(2026, 7, 1, tzinfo=UTC), rid="old")
    spend(project, 30, NOW - timedelta(days=3), rid="fast")  # $10 a day: $31 + 11.5 x 10
    first = budget_evaluate(budget_id=budget.pk, now=NOW)
    assert [(a.kind, a.threshold) for a in first.new_alerts] == [("forecast", 0)]
    assert first.new_alerts[0].projected == first.status.forecast > Decimal(100)
    for hours in (0, 1, 5):
        assert (
            budget_evaluate(budget_id=budget.pk, now=NOW + timedelta(hours=hours)).new_alerts == ()
        )
    note = Notification.objects.get(kind="budget.forecast", channel__kind="in_app")
    assert note.stage == "forecast" and note.period == "2026-07"
    assert "$146.00" in note.body and "$100.00" in note.body
    # Next month: once more.
    august = datetime(2026, 8, 12, tzinfo=UTC)
    spend(project, 40, august - timedelta(days=3), rid="aug")
    assert [a.kind for a in budget_evaluate(budget_id=budget.pk, now=august).new_alerts] == [
        "forecast"
    ]


def test_no_forecast_alert_when_the_budget_turns_it_off(budget, project):
    spend(project, 1, datetime(2026, 7, 1, tzinfo=UTC), rid="old")
    spend(project, 200, NOW - timedelta(days=3), rid="fast")
    result = budget_evaluate(budget_id=budget.pk, now=NOW)
    assert result.status.forecast_over
    assert [a.kind for a in result.new_alerts] == []


def test_an_inactive_or_missing_budget_is_left_alone(budget, project):
    spend(project, 600, NOW - timedelta(days=1), rid="a")
    Budget.objects.filter(pk=budget.pk).update(is_active=False)
    assert budget_evaluate(budget_id=budget.pk, now=NOW) is None
    assert budget_evaluate(budget_id=10**9, now=NOW) is None
    assert not BudgetAlert.objects.exists() and not Notification.objects.exists()


def test_the_sweep_evaluates_every_active_budget_once(organization, project, budget):
    org_budget = Budget.objects.create(
        organization=organization, amount=Decimal(100), forecast_alert=False
    )
    spend(project, 300, NOW - timedelta(days=1), rid="a")
    with time_machine.travel(NOW, tick=False):
        assert budgets_sweep() == 2
        assert budgets_sweep() == 2  # beat firing twice for the same instant
    assert alerts(budget) == [("2026-07", "threshold", 50)]
    assert alerts(org_budget) == [("2026-07", "threshold", t) for t in (50, 80, 100)]
    assert Notification.objects.count() == 2 * 4


@pytest.mark.django_db(transaction=True)
def test_two_evaluations_at_once_alert_once(organization, project, owner):
    """Two threads evaluate the same budget at the same instant: the unique constraint
    lets one write the alert; the other reads it and writes no notification."""
    if connection.vendor != "postgresql":
        pytest.skip("needs concurrent writers (PostgreSQL)")
    budget = Budget.objects.create(
        organization=organization, project=project, amount=Decimal(100), forecast_alert=False
    )
    spend(project, 85, NOW - timedelta(days=1), rid="a")
    barrier = threading.Barrier(2)
    results, errors = [], []

    def evaluate() -> None:
        try:
            barrier.wait(timeout=10)
            results.append(budget_evaluate(budget_id=budget.pk, now=NOW))
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=evaluate) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert not errors, errors
    assert sorted(len(r.new_alerts) for r in results) in ([0, 2], [1, 1])
    assert alerts(budget) == [("2026-07", "threshold", 50), ("2026-07", "threshold", 80)]
    assert Notification.objects.filter(subject=f"budget:{budget.public_id}").count() == 4
