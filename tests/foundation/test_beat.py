"""Beat firing a periodic task twice for the same instant (two beats running, or one beat
restarted) sends nothing twice: the rotation scan writes each reminder once (unique rows),
the notification sweep delivers each row once (claim by conditional update).

The tasks are the ones CELERY_BEAT_SCHEDULE names, run eagerly in this process; the
concurrent variants run two threads at once on PostgreSQL (in-memory SQLite gives each
thread its own empty database, so they are skipped there).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import threading

import pytest
import time_machine
from celery.contrib.testing.worker import start_worker
from celery.signals import task_postrun
from django.conf import settings
from django.core import mail
from django.db import connection

from keys.models import RotationReminder
from keys.tasks import rotation_reminders_scan
from platformadmin.celery import app
from platformadmin.notifications.models import InAppMessage, Notification
from platformadmin.notifications.tasks import notifications_sweep
from tests.factories import (
    OrganizationFactory,
    ProjectFactory,
    UserFactory,
    add_org_member,
    add_project_member,
    make_api_key,
)

UTC = dt.UTC
CREATED = dt.datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
PERIOD_DAYS = 30
SCAN_AT = CREATED + dt.timedelta(days=PERIOD_DAYS - 3)  # every key is at its "7d" stage
SWEEP_AT = SCAN_AT + dt.timedelta(minutes=5)  # past the sweep's grace for new rows
KEYS = 6

needs_postgres = pytest.mark.skipif(
    not settings.DATABASES["default"]["ENGINE"].endswith("postgresql"),
    reason="two writers at once need row locks: SQLite locks the whole database (CI runs "
    "these on PostgreSQL)",
)


def scheduled(task_name: str):
    """The task a beat entry sends, as the worker would run it."""
    entries = [e for e in settings.CELERY_BEAT_SCHEDULE.values() if e["task"] == task_name]
    assert len(entries) == 1, f"{task_name} should be scheduled exactly once"
    task = app.tasks[task_name]
    assert task in (rotation_reminders_scan, notifications_sweep)
    return task


@contextlib.contextmanager
def eager():
    """Tasks queued by a task (the sweep queues deliveries) run inline, in its thread."""
    before = app.conf.task_always_eager
    app.conf.task_always_eager = True
    try:
        yield
    finally:
        app.conf.task_always_eager = before


def make_world() -> list:
    organization = OrganizationFactory(billing_timezone="Europe/Paris")
    add_org_member(UserFactory(email="beat-owner@example.com"), organization, "owner")
    project = ProjectFactory(organization=organization, rotation_period_days=PERIOD_DAYS)
    add_project_member(UserFactory(email="beat-project@example.com"), project, "owner")
    with time_machine.travel(CREATED, tick=False):
        return [make_api_key(project, name=f"beat key {n}") for n in range(KEYS)]


def run_twice(task, *, kwargs: dict, concurrently: bool) -> list:
    """Run ``task`` twice for the same instant, one after the other or in two threads
    started together."""
    results: list = [None, None]
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)

    def run(slot: int) -> None:
        try:
            if concurrently:
                barrier.wait(timeout=30)
            outcome = task.apply(kwargs=kwargs)  # as a worker runs it, in this thread
            if outcome.failed():
                raise outcome.result
            results[slot] = outcome.result
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)
        finally:
            if concurrently:
                connection.close()  # this thread's own connection

    if concurrently:
        threads = [threading.Thread(target=run, args=(slot,)) for slot in (0, 1)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
    else:
        run(0)
        run(1)
    assert not errors, errors
    return results


def check_reminders_once(keys) -> None:
    assert RotationReminder.objects.count() == KEYS
    assert set(RotationReminder.objects.values_list("stage", flat=True)) == {"7d"}
    per_key = Notification.objects.filter(kind="key.rotation").count() / KEYS
    assert per_key == int(per_key) >= 1  # one row per channel, for every key alike
    keys_seen = {n.subject for n in Notification.objects.filter(kind="key.rotation")}
    assert keys_seen == {f"key:{k.public_id}" for k in keys}


def check_delivered_once() -> None:
    notifications = Notification.objects.filter(kind="key.rotation").select_related("channel")
    assert {n.state for n in notifications} == {Notification.State.SENT}
    assert {n.attempts for n in notifications} == {1}
    in_app = [n for n in notifications if n.channel.kind == "in_app"]
    email = [n for n in notifications if n.channel.kind == "email"]
    assert in_app and email
    assert InAppMessage.objects.count() == sum(len(n.recipients) for n in in_app)
    assert len(mail.outbox) == len(email)


def sweep_twice(*, concurrently: bool) -> list:
    scan = scheduled("keys.rotation_reminders_scan")
    with time_machine.travel(SCAN_AT, tick=False):
        scan.apply(kwargs={"now": SCAN_AT.isoformat()}).get()
    sweep = scheduled("notifications.notifications_sweep")
    # Eager only now: the scan's own on-commit deliveries went to the broker, unrun, so the
    # rows are still pending and only the sweeps can deliver them.
    with time_machine.travel(SWEEP_AT, tick=False), eager():
        return run_twice(sweep, kwargs={}, concurrently=concurrently)


@pytest.mark.django_db
def test_the_scan_fired_twice_for_one_instant_sends_each_reminder_once():
    keys = make_world()
    scan = scheduled("keys.rotation_reminders_scan")
    with time_machine.travel(SCAN_AT, tick=False):
        first, second = run_twice(scan, kwargs={"now": SCAN_AT.isoformat()}, concurrently=False)
    assert (first["sent"], second["sent"]) == (KEYS, 0)
    check_reminders_once(keys)


@pytest.mark.django_db
def test_the_sweep_fired_twice_for_one_instant_delivers_each_row_once():
    make_world()
    assert Notification.objects.filter(state="pending").count() == 0  # nothing written yet
    first, second = sweep_twice(concurrently=False)
    assert first > 0 and second == 0  # rows queued by the first sweep; none left
    check_delivered_once()


@needs_postgres
@pytest.mark.django_db(transaction=True)
def test_two_beats_scanning_at_once_send_each_reminder_once():
    keys = make_world()
    scan = scheduled("keys.rotation_reminders_scan")
    with time_machine.travel(SCAN_AT, tick=False):
        results = run_twice(scan, kwargs={"now": SCAN_AT.isoformat()}, concurrently=True)
    assert sum(r["sent"] for r in results) == KEYS and sum(r["failed"] for r in results) == 0
    check_reminders_once(keys)


@needs_postgres
@pytest.mark.django_db(transaction=True)
def test_two_beats_sweeping_at_once_deliver_each_row_once():
    make_world()
    sweep_twice(concurrently=True)
    check_delivered_once()


@pytest.mark.django_db(transaction=True)
def test_the_scan_sent_twice_to_a_real_worker_sends_each_reminder_once():
    """As beat sends it: by name, through the broker (Redis in CI), run by a real worker."""
    keys = make_world()
    finished = threading.Semaphore(0)

    def count(sender=None, **kwargs) -> None:
        if sender is not None and sender.name == "keys.rotation_reminders_scan":
            finished.release()

    # Wait on the worker's own signal rather than polling the tables it writes (SQLite
    # would refuse a read while the worker's thread holds its write lock).
    task_postrun.connect(count, weak=False)
    try:
        with time_machine.travel(SCAN_AT, tick=True):
            with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=10):
                for _ in range(2):
                    app.send_task(
                        "keys.rotation_reminders_scan", kwargs={"now": SCAN_AT.isoformat()}
                    )
                assert finished.acquire(timeout=60) and finished.acquire(timeout=60)
    finally:
        task_postrun.disconnect(count)
    check_reminders_once(keys)
