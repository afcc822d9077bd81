"""usage.budget_reservations_purge: settled and expired reservations past the retention go, in
batches; open unexpired ones and recent ones stay. On the test database (SQLite by default,
PostgreSQL in CI)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import time_machine
from django.conf import settings

from tests.factories import ProjectFactory
from usage.models import Budget, BudgetReservation
from usage.reservations import budget_reservation_settle, budget_reservations_purge
from usage.tasks import budget_reservations_purge as purge_task

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 12, 15, 12, 0, tzinfo=UTC)


@pytest.fixture
def budget() -> Budget:
    project = ProjectFactory()
    return Budget.objects.create(
        organization=project.organization, project=project, amount=Decimal("10"), hard_limit=True
    )


def reservation(budget, *, expires_at, settled_at=None) -> BudgetReservation:
    return BudgetReservation.objects.create(
        budget=budget,
        period="2026-12",
        amount=Decimal("0.01"),
        expires_at=expires_at,
        settled_at=settled_at,
    )


def test_settled_and_expired_past_retention_go_the_rest_stay(budget, settings):
    settings.BUDGET_RESERVATION_RETENTION_DAYS = 7
    day = timedelta(days=1)
    old_settled = [reservation(budget, expires_at=NOW, settled_at=NOW - 8 * day) for _ in range(5)]
    old_expired = [reservation(budget, expires_at=NOW - 8 * day) for _ in range(3)]
    keep = {
        # settled 6 days ago: younger than the retention
        reservation(budget, expires_at=NOW, settled_at=NOW - 6 * day).pk,
        # expired 6 days ago, never settled
        reservation(budget, expires_at=NOW - 6 * day).pk,
        # open and unexpired: it holds room under the hard limit now, whatever its age
        reservation(budget, expires_at=NOW + timedelta(minutes=5)).pk,
        # settled exactly at the cutoff: not older than the retention
        reservation(budget, expires_at=NOW, settled_at=NOW - 7 * day).pk,
    }
    with time_machine.travel(NOW, tick=False):
        # batch of 2 over 8 rows: four batches, each its own transaction
        assert purge_task.apply(kwargs={"batch_size": 2}).get() == 8
        assert purge_task.apply().get() == 0  # idempotent: a redelivery deletes nothing
    assert set(BudgetReservation.objects.values_list("pk", flat=True)) == keep
    assert not BudgetReservation.objects.filter(pk__in=[r.pk for r in old_settled + old_expired])


def test_open_unexpired_reservation_is_never_purged_even_when_old(budget, settings):
    """A call that has run for longer than the retention (a huge TTL) still holds its room."""
    settings.BUDGET_RESERVATION_RETENTION_DAYS = 1
    with time_machine.travel(NOW - timedelta(days=30), tick=False):
        held = reservation(budget, expires_at=NOW + timedelta(hours=1))
    assert budget_reservations_purge(now=NOW) == 0
    assert BudgetReservation.objects.filter(pk=held.pk).exists()
    # Once it has expired for longer than the retention, it goes.
    assert budget_reservations_purge(now=NOW + timedelta(days=2)) == 1


def test_a_late_settle_restarts_the_retention(budget, settings):
    """An expired row settled late (the call returned after its TTL) is kept for its days."""
    settings.BUDGET_RESERVATION_RETENTION_DAYS = 7
    row = reservation(budget, expires_at=NOW - timedelta(days=10))
    budget_reservation_settle(reservation_ids=[row.pk], now=NOW)
    assert budget_reservations_purge(now=NOW + timedelta(days=1)) == 0
    assert budget_reservations_purge(now=NOW + timedelta(days=8)) == 1


def test_max_batches_bounds_one_run(budget, settings):
    settings.BUDGET_RESERVATION_RETENTION_DAYS = 7
    for _ in range(5):
        reservation(budget, expires_at=NOW - timedelta(days=9))
    assert budget_reservations_purge(now=NOW, batch_size=2, max_batches=1) == 2
    assert budget_reservations_purge(now=NOW, batch_size=2) == 3


def test_zero_retention_keeps_everything(budget, settings):
    settings.BUDGET_RESERVATION_RETENTION_DAYS = 0
    reservation(budget, expires_at=NOW - timedelta(days=400), settled_at=NOW - timedelta(days=400))
    assert budget_reservations_purge(now=NOW) == 0
    assert BudgetReservation.objects.count() == 1


def test_task_is_safe_to_redeliver_and_scheduled_hourly():
    assert purge_task.acks_late and purge_task.reject_on_worker_lost
    assert purge_task.soft_time_limit < purge_task.time_limit
    entry = settings.CELERY_BEAT_SCHEDULE["budget-reservations-purge"]
    assert entry["task"] == purge_task.name == "usage.budget_reservations_purge"
    assert entry["schedule"] == 3600.0 and entry["options"]["expires"] < 3600
