"""budget_reserve across connections: concurrent reservations never overshoot, a budget row
locked beyond ``BUDGET_LOCK_TIMEOUT_MS`` or a connection killed under the call refuses it
(fail closed). Real transactions, one connection per thread: PostgreSQL (CI)."""

from __future__ import annotations

import threading
from decimal import Decimal

import psycopg
import pytest
from django.db import connection, transaction

from usage.models import Budget, BudgetReservation
from usage.reservations import budget_reserve

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        connection.vendor != "postgresql",
        reason="row locks, lock_timeout and pg_terminate_backend are PostgreSQL's; in-memory "
        "SQLite shares one cache between threads and answers 'table is locked' at once; run "
        "with DATABASE_URL=postgres://... (CI does)",
    ),
]


@pytest.fixture
def budget(project):
    return Budget.objects.create(
        organization=project.organization, project=project, amount=Decimal(5), hard_limit=True
    )


def test_concurrent_reservations_take_exactly_the_room_there_is(project, budget):
    org_budget = Budget.objects.create(
        organization=project.organization, amount=Decimal(100), hard_limit=True
    )
    barrier = threading.Barrier(20)
    results: list = [None] * 20

    def reserve(i: int) -> None:
        try:
            barrier.wait(timeout=30)
            results[i] = budget_reserve(project=project, amount=Decimal(1))
        except Exception as exc:  # reported by the assertion below
            results[i] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=reserve, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    allowed = [r for r in results if getattr(r, "allowed", False)]
    refused = [r for r in results if getattr(r, "error_type", "") == "BudgetExceeded"]
    assert (len(allowed), len(refused)) == (5, 15), results
    assert BudgetReservation.objects.filter(budget=budget).count() == 5
    assert BudgetReservation.objects.filter(budget=org_budget).count() == 5
    assert all("$5.00 reserved of $5.00" in r.message for r in refused)


def test_a_budget_row_locked_beyond_the_lock_timeout_refuses_the_call(project, budget, settings):
    settings.BUDGET_LOCK_TIMEOUT_MS = 200
    locked, release = threading.Event(), threading.Event()

    def hold_the_row() -> None:
        try:
            with transaction.atomic():
                Budget.objects.select_for_update().get(pk=budget.pk)
                locked.set()
                release.wait(timeout=30)
        finally:
            connection.close()

    holder = threading.Thread(target=hold_the_row)
    holder.start()
    try:
        assert locked.wait(timeout=10)
        result = budget_reserve(project=project, amount=Decimal(1))
    finally:
        release.set()
        holder.join(timeout=30)
    assert not result.allowed and result.error_type == "BudgetUnavailable"
    assert "stayed locked by other transactions (another change, or a queue of " in result.message
    assert "concurrent calls) for more than 200 ms" in result.message
    assert not BudgetReservation.objects.exists()
    assert budget_reserve(project=project, amount=Decimal(1)).allowed  # the lock is gone


def test_a_connection_killed_under_the_call_refuses_it(project, budget):
    connection.ensure_connection()
    pid = connection.connection.info.backend_pid
    params = connection.get_connection_params()
    params.pop("cursor_factory", None)
    params.pop("context", None)
    with psycopg.connect(**params, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", [pid])
    try:
        result = budget_reserve(project=project, amount=Decimal(1))
    finally:
        connection.close()  # the killed connection is unusable; the next query reconnects
    assert not result.allowed and result.error_type == "BudgetUnavailable"
    assert "could not be read (the database answered OperationalError)" in result.message
    assert not BudgetReservation.objects.exists()
