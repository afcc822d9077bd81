"""Races on PostgreSQL, in threads with their own connections: the claim lets one caller
through, concurrent enqueues write each row once. (SQLite serializes writers, so there is
no race to show there; the same code paths run in the other tests on both backends.)"""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest
from django.db import connection, connections, transaction
from django.utils import timezone

from platformadmin.notifications import delivery
from platformadmin.notifications.models import Notification
from platformadmin.notifications.services import notifications_enqueue
from tests.factories import OrganizationFactory, UserFactory, add_org_member

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _postgresql_only():
    if connection.vendor != "postgresql":
        pytest.skip("a PostgreSQL race (SQLite serializes writers): run with DATABASE_URL")


def race(count: int, work: Callable[[], object]) -> list[object]:
    """``work`` in ``count`` threads released together; their results (or exceptions)."""
    barrier = threading.Barrier(count)
    results: list[object] = [None] * count

    def run(i: int) -> None:
        try:
            barrier.wait(timeout=30)
            results[i] = work()
        except Exception as exc:  # collected and asserted on by the test
            results[i] = exc
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results


def _organization():
    organization = OrganizationFactory()
    add_org_member(UserFactory(), organization, "owner")
    return organization


def enqueue(organization) -> int:
    with transaction.atomic():
        return len(
            notifications_enqueue(
                organization=organization,
                kind="budget.threshold",
                subject="budget:race",
                period="2026-12",
                stage="80",
                title="t",
                body="b",
                payload={},
            )
        )


def test_eight_concurrent_claims_let_one_through():
    organization = _organization()
    enqueue(organization)
    row = Notification.objects.filter(organization=organization).first()
    now = timezone.now()
    results = race(8, lambda: delivery.notification_claim(notification_id=row.pk, now=now))
    assert results.count(True) == 1 and results.count(False) == 7, results
    row.refresh_from_db()
    assert row.attempts == 1 and row.state == Notification.State.SENDING


def test_concurrent_enqueues_write_each_row_once():
    organization = _organization()
    enqueue(organization)  # the default channels exist: the race is on the rows
    Notification.objects.all().delete()
    results = race(6, lambda: enqueue(organization))
    assert not [r for r in results if isinstance(r, Exception)], results
    assert sum(results) == 2  # one per default channel, whichever thread wrote it
    assert Notification.objects.count() == 2
