"""Rotation reminders (keys/reminders.py): the due date, the stages in the organization's
timezone, and the scan that writes each (key, cycle, stage) once with its notifications.

Time is moved with time-machine: keys are created, rotated and scanned at chosen instants.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.db import DatabaseError, connection
from django.test.utils import CaptureQueriesContext

from keys import reminders
from keys.models import APIKey, RotationReminder
from keys.reminders import (
    RotationScanError,
    api_key_rotation_stage,
    rotation_reminders_scan,
    stage_for_days_left,
)
from keys.selectors import api_key_rotation_due
from keys.services import api_key_create_unaudited, api_key_revoke, api_key_rotate
from keys.tasks import rotation_reminders_scan as scan_task
from platformadmin.notifications.models import Notification
from tests.factories import (
    OrganizationFactory,
    ProjectFactory,
    UserFactory,
    add_org_member,
    add_project_member,
    fake_secret,
    make_api_key,
)

pytestmark = pytest.mark.django_db

UTC = dt.UTC
T0 = dt.datetime(2026, 1, 1, 12, 0, tzinfo=UTC)  # created; due 30 days later
DUE = T0 + dt.timedelta(days=30)  # 2026-01-31 12:00 UTC


def at(when: dt.datetime):
    return time_machine.travel(when, tick=False)


def scan(when: dt.datetime):
    with at(when):
        return rotation_reminders_scan(now=when)


def key_at(project, when: dt.datetime, **kwargs) -> APIKey:
    with at(when):
        return make_api_key(project, **kwargs)


def stages(api_key: APIKey) -> list[str]:
    """Reminders of the key in the order they were written."""
    return list(
        RotationReminder.objects.filter(api_key=api_key)
        .order_by("created_at", "pk")
        .values_list("stage", flat=True)
    )


def notified(api_key: APIKey) -> Counter:
    """Notification rows per stage for the key (one per channel of the organization)."""
    return Counter(
        Notification.objects.filter(
            kind="key.rotation", subject=f"key:{api_key.public_id}"
        ).values_list("stage", flat=True)
    )


@pytest.fixture
def org_owner(organization):
    user = UserFactory(username="rot-owner", email="rot-owner@example.com")
    add_org_member(user, organization, "owner")
    return user


@pytest.fixture
def monthly(organization, org_owner):
    """A project that rotates every 30 days, with an owner of its own."""
    project = ProjectFactory(organization=organization, name="Billing", rotation_period_days=30)
    add_project_member(
        UserFactory(username="billing-owner", email="billing-owner@example.com"), project, "owner"
    )
    return project


@pytest.mark.parametrize(
    "days_left, stage",
    [
        (40, None),
        (15, None),
        (14, "14d"),
        (8, "14d"),
        (7, "7d"),
        (2, "7d"),
        (1, "1d"),
        (0, "due"),
        (-1, "due"),
        (-6, "due"),
        (-7, "overdue-1"),
        (-13, "overdue-1"),
        (-14, "overdue-2"),
        (-70, "overdue-10"),
    ],
)
def test_the_stage_is_the_latest_one_reached(days_left, stage):
    assert stage_for_days_left(days_left) == stage


def test_every_stage_is_sent_once_across_repeated_scans(monthly):
    api_key = key_at(monthly, T0)
    first_seen: dict[str, dt.datetime] = {}
    when = T0
    while when <= DUE + dt.timedelta(days=29):
        for _ in range(2):  # two scans of the same instant (two beats) send nothing twice
            scan(when)
        for stage in stages(api_key):
            first_seen.setdefault(stage, when)
        when += dt.timedelta(hours=6)
    expected = ["14d", "7d", "1d", "due", "overdue-1", "overdue-2", "overdue-3", "overdue-4"]
    assert stages(api_key) == expected
    # Each stage starts at midnight (UTC here) of its day: 14, 7, 1 days before, on the day,
    # then every 7 days.
    midnight = dt.datetime(2026, 1, 31, tzinfo=UTC)
    assert first_seen == {
        "14d": midnight - dt.timedelta(days=14),
        "7d": midnight - dt.timedelta(days=7),
        "1d": midnight - dt.timedelta(days=1),
        "due": midnight,
        "overdue-1": midnight + dt.timedelta(days=7),
        "overdue-2": midnight + dt.timedelta(days=14),
        "overdue-3": midnight + dt.timedelta(days=21),
        "overdue-4": midnight + dt.timedelta(days=28),
    }
    counts = notified(api_key)
    assert set(counts) == set(expected)
    channels = set(counts.values())
    assert len(channels) == 1 and channels.pop() >= 1, counts  # as many rows per stage
    reminder = RotationReminder.objects.get(api_key=api_key, stage="7d")
    assert reminder.due_at == DUE and reminder.cycle == T0.isoformat()


def test_the_reminder_reaches_the_project_owners_and_the_organization_owners(monthly):
    api_key = key_at(monthly, T0)
    scan(DUE - dt.timedelta(days=3))
    rows = Notification.objects.filter(subject=f"key:{api_key.public_id}", stage="7d")
    emails = {r["email"] for n in rows for r in n.recipients if r.get("email")}
    assert {"rot-owner@example.com", "billing-owner@example.com"} <= emails
    notification = rows.first()
    assert notification.project_id == monthly.pk
    assert api_key.name in notification.title and api_key.hint in notification.title
    assert "2026-01-31 12:00 UTC" in notification.body and "Rotate" in notification.body
    assert notification.payload["key"]["hint"] == api_key.hint
    assert notification.payload["days_left"] == 3
    assert notification.payload["due_at"] == DUE.isoformat()


def test_a_key_first_seen_late_gets_only_the_current_stage(monthly):
    api_key = key_at(monthly, T0)
    scan(DUE - dt.timedelta(days=3))  # first scan ever: 14d and 7d have both been reached
    assert stages(api_key) == ["7d"]
    assert "in 3 days" in Notification.objects.filter(stage="7d").first().title
    scan(DUE + dt.timedelta(days=20))  # nobody scanned for three weeks
    assert stages(api_key) == ["7d", "overdue-2"]


def test_rotating_mid_cycle_starts_a_new_cycle(monthly, org_owner):
    api_key = key_at(monthly, T0)
    scan(DUE - dt.timedelta(days=10))
    scan(DUE - dt.timedelta(days=5))
    assert stages(api_key) == ["14d", "7d"]
    rotated_at = DUE - dt.timedelta(days=4)
    with at(rotated_at):
        api_key_rotate(api_key=api_key, secret=fake_secret(), actor=org_owner)
    api_key.refresh_from_db()
    assert api_key_rotation_due(api_key=api_key) == rotated_at + dt.timedelta(days=30)
    # The old due date passes: nothing for the old cycle, nothing yet for the new one.
    for days in range(-3, 12):
        scan(DUE + dt.timedelta(days=days))
    assert stages(api_key) == ["14d", "7d"]
    # The new cycle's stages come later, under the new cycle.
    new_due = rotated_at + dt.timedelta(days=30)
    scan(new_due - dt.timedelta(days=13))
    scan(new_due - dt.timedelta(days=13))
    new = RotationReminder.objects.filter(api_key=api_key, cycle=rotated_at.isoformat())
    assert list(new.values_list("stage", flat=True)) == ["14d"]
    assert notified(api_key)["14d"] == 2 * notified(api_key)["7d"]  # once per cycle


def test_revoking_ends_the_cycle(monthly, org_owner):
    api_key = key_at(monthly, T0)
    scan(DUE - dt.timedelta(days=10))
    with at(DUE - dt.timedelta(days=9)):
        api_key_revoke(api_key=api_key, actor=org_owner, reason="unused")
    for days in range(-8, 30, 2):
        scan(DUE + dt.timedelta(days=days))
    assert stages(api_key) == ["14d"]
    api_key.refresh_from_db()
    assert api_key_rotation_stage(api_key=api_key, now=DUE) is None


def test_an_expiry_sooner_than_the_period_sets_the_due_date(organization, org_owner):
    project = ProjectFactory(organization=organization, rotation_period_days=90)
    expires = T0 + dt.timedelta(days=10, hours=3)
    api_key = key_at(project, T0, expires_at=expires)
    assert api_key_rotation_due(api_key=api_key) == expires
    scan(T0)
    assert stages(api_key) == ["14d"]  # 10 days left when first seen
    notification = Notification.objects.filter(subject=f"key:{api_key.public_id}").first()
    assert notification.payload["due_by"] == "expiry"
    assert "expires" in notification.body
    scan(expires - dt.timedelta(days=1))
    scan(expires)
    assert stages(api_key) == ["14d", "1d", "due"]


def test_an_expiry_later_than_the_period_changes_nothing(monthly):
    api_key = key_at(monthly, T0, expires_at=T0 + dt.timedelta(days=365))
    assert api_key_rotation_due(api_key=api_key) == DUE


@pytest.mark.parametrize(
    "zone, due, day_before_starts, due_day_starts",
    [
        # Fall back (2026-11-01 02:00 EDT → 01:00 EST): the day before begins at midnight
        # EDT, the due day at midnight EST, an hour later in UTC.
        (
            "America/New_York",
            dt.datetime(2026, 11, 2, 15, 0, tzinfo=UTC),
            dt.datetime(2026, 11, 1, 4, 0, tzinfo=UTC),
            dt.datetime(2026, 11, 2, 5, 0, tzinfo=UTC),
        ),
        # Spring forward (2026-03-08 02:00 EST → 03:00 EDT).
        (
            "America/New_York",
            dt.datetime(2026, 3, 9, 15, 0, tzinfo=UTC),
            dt.datetime(2026, 3, 8, 5, 0, tzinfo=UTC),
            dt.datetime(2026, 3, 9, 4, 0, tzinfo=UTC),
        ),
        # Across a month boundary, east of UTC: due 1 March 00:30 in Tokyo, which is still
        # 28 February in UTC.
        (
            "Asia/Tokyo",
            dt.datetime(2026, 2, 28, 15, 30, tzinfo=UTC),
            dt.datetime(2026, 2, 27, 15, 0, tzinfo=UTC),
            dt.datetime(2026, 2, 28, 15, 0, tzinfo=UTC),
        ),
        # West of UTC: due 1 April 20:00 in Los Angeles, already 2 April in UTC.
        (
            "America/Los_Angeles",
            dt.datetime(2026, 4, 2, 3, 0, tzinfo=UTC),
            dt.datetime(2026, 3, 31, 7, 0, tzinfo=UTC),
            dt.datetime(2026, 4, 1, 7, 0, tzinfo=UTC),
        ),
    ],
)
def test_stages_start_at_midnight_in_the_billing_timezone(
    zone, due, day_before_starts, due_day_starts
):
    organization = OrganizationFactory(billing_timezone=zone)
    add_org_member(UserFactory(), organization, "owner")
    project = ProjectFactory(organization=organization, rotation_period_days=20)
    api_key = key_at(project, due - dt.timedelta(days=20))
    minute = dt.timedelta(minutes=1)
    hour = dt.timedelta(hours=1)
    for when, expected in [
        (day_before_starts - minute, "7d"),
        (day_before_starts, "1d"),
        (due_day_starts - minute, "1d"),
        (due_day_starts, "due"),
    ]:
        assert api_key_rotation_stage(api_key=api_key, now=when).stage == expected, when
    # Hourly scans across both boundaries: each stage once, first written at its midnight.
    when = day_before_starts - 3 * hour
    while when <= due_day_starts + 3 * hour:
        scan(when)
        when += hour
    written = dict(
        RotationReminder.objects.filter(api_key=api_key).values_list("stage", "created_at")
    )
    assert written == {
        "7d": day_before_starts - 3 * hour,
        "1d": day_before_starts,
        "due": due_day_starts,
    }
    local = Notification.objects.filter(subject=f"key:{api_key.public_id}", stage="due").first()
    due_local = due.astimezone(ZoneInfo(zone))
    assert f"{due_local:%Y-%m-%d %H:%M}" in local.body and zone in local.body


def test_an_inactive_or_admin_key_without_expiry_is_not_reminded(organization, monthly):
    active = key_at(monthly, T0)
    gone = key_at(monthly, T0)
    APIKey.objects.filter(pk=gone.pk).update(status=APIKey.Status.DELETED_UPSTREAM)
    with at(T0):
        admin = api_key_create_unaudited(
            organization=organization,
            name="admin",
            project=None,
            kind="admin",
            secret=fake_secret("admin"),
        )
        expiring_admin = api_key_create_unaudited(
            organization=organization,
            project=None,
            kind="admin",
            name="expiring admin",
            secret=fake_secret("admin"),
            expires_at=DUE,
        )
    assert api_key_rotation_due(api_key=admin) is None
    scan(DUE)
    assert stages(active) == ["due"] and stages(expiring_admin) == ["due"]
    assert stages(gone) == [] and stages(admin) == []
    # An admin key belongs to no project: its reminder goes to the organization's owners.
    assert (
        Notification.objects.filter(subject=f"key:{expiring_admin.public_id}")
        .exclude(project=None)
        .count()
        == 0
    )


def test_the_scan_reads_keys_in_two_queries_whatever_their_number(monthly):
    first = key_at(monthly, T0)
    when = DUE - dt.timedelta(days=3)
    scan(when)  # the organization's default channels now exist
    assert stages(first) == ["7d"]

    def measured() -> int:
        with CaptureQueriesContext(connection) as ctx:
            scan(when)
        return len(ctx.captured_queries)

    for n in range(10):
        key_at(monthly, T0, name=f"ten {n}")
    ten = measured()
    for n in range(40):
        key_at(monthly, T0, name=f"forty {n}")
    forty = measured()
    per_key = (ten - 2) / 10
    assert per_key == int(per_key) and forty == 2 + 40 * per_key, (ten, forty)
    # Everything sent: 51 keys, two queries (the keys, the reminders written).
    assert measured() == 2
    assert RotationReminder.objects.filter(stage="7d").count() == 51


def test_the_task_takes_an_iso_instant_and_refuses_a_naive_one(monthly):
    api_key = key_at(monthly, T0)
    when = DUE - dt.timedelta(days=1)
    with at(when):
        first = scan_task.apply(kwargs={"now": when.isoformat()}).get()
        second = scan_task.apply(kwargs={"now": when.isoformat()}).get()
    assert first["sent"] == 1 and second["sent"] == 0
    assert stages(api_key) == ["1d"]
    refused = scan_task.apply(kwargs={"now": "2026-01-30T00:00:00"})
    assert refused.failed() and "aware" in str(refused.result)


def test_a_key_whose_reminder_fails_is_retried_and_holds_back_no_other(monkeypatch, monthly):
    """Fault injection (the real enqueue, made to fail for one key): that key's transaction
    rolls back (no reminder row, no notification), the others are sent, the scan then
    raises naming the key, and the next scan sends it."""
    good, bad = key_at(monthly, T0), key_at(monthly, T0)
    real = reminders.notifications_enqueue

    def failing_for_bad(**kwargs):
        if kwargs["subject"] == f"key:{bad.public_id}":
            real(**kwargs)  # its rows are written, then the transaction must undo them
            raise DatabaseError("the outbox is unavailable")
        return real(**kwargs)

    monkeypatch.setattr(reminders, "notifications_enqueue", failing_for_bad)
    with pytest.raises(RotationScanError, match=str(bad.public_id)):
        scan(DUE - dt.timedelta(days=3))
    assert stages(good) == ["7d"] and stages(bad) == []
    assert not notified(bad)
    monkeypatch.setattr(reminders, "notifications_enqueue", real)
    report = scan(DUE - dt.timedelta(days=3))
    assert report.sent == 1 and stages(bad) == ["7d"] and notified(bad)
