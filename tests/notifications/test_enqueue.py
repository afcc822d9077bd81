"""notifications_enqueue: one row per channel taking the kind, default channels on first
use, owners as recipients, idempotent on the unique key, delivery queued after commit."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.db import transaction

from platformadmin.notifications.models import Notification, NotificationChannel
from platformadmin.notifications.services import (
    notification_channel_create,
    notifications_enqueue,
)
from tests.factories import UserFactory, add_org_member, add_project_member

pytestmark = pytest.mark.django_db


def enqueue(organization, *, project=None, stage="80", kind="budget.threshold"):
    return notifications_enqueue(
        organization=organization,
        project=project,
        kind=kind,
        subject="budget:1234",
        period="2026-12",
        stage=stage,
        title="Budget Production at 80 %",
        body="$80.00 of $100.00 + 3 unpriced calls",
        payload={"spend": Decimal("80.0000000001"), "unpriced_requests": 3},
    )


def test_the_first_notification_creates_the_default_channels(organization, owner):
    with transaction.atomic():
        rows = enqueue(organization)
    channels = NotificationChannel.objects.filter(organization=organization)
    assert sorted((c.name, c.kind) for c in channels) == [
        ("Console bell", "in_app"),
        ("Owners by e-mail", "email"),
    ]
    assert sorted(r.channel.kind for r in rows) == ["email", "in_app"]
    assert all(r.state == Notification.State.PENDING for r in rows)


def test_a_second_call_writes_nothing(organization, owner):
    with transaction.atomic():
        first = enqueue(organization)
    with transaction.atomic():
        second = enqueue(organization)
    assert len(first) == 2 and second == []
    assert Notification.objects.count() == 2


def test_another_stage_is_another_row(organization, owner):
    enqueue(organization, stage="50")
    enqueue(organization, stage="80")
    assert Notification.objects.filter(stage="50").count() == 2
    assert Notification.objects.filter(stage="80").count() == 2


def test_the_unique_key_joins_the_five_parts(organization, owner):
    [row, *_] = enqueue(organization)
    assert row.unique_key == f"{row.channel.public_id}|budget:1234|budget.threshold|2026-12|80"


def test_delivery_is_queued_only_after_the_commit(
    organization, owner, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks() as callbacks:
        enqueue(organization)
        enqueue(organization)  # idempotent: queues nothing more
    assert len(callbacks) == 2


def test_recipients_are_the_owners_and_for_a_project_event_its_owners(
    organization, project, owner, reader, project_owner, member
):
    [org_row, *_] = enqueue(organization, stage="50")
    [project_row, *_] = enqueue(organization, project=project, stage="80")
    assert [r["user_id"] for r in org_row.recipients] == [owner.pk]
    assert sorted(r["user_id"] for r in project_row.recipients) == sorted(
        [owner.pk, project_owner.pk]
    )
    assert {"user_id": owner.pk, "email": owner.email, "name": "owner"} in org_row.recipients


def test_a_user_owning_both_is_one_recipient(organization, project, owner):
    add_project_member(owner, project, "owner")
    [row, *_] = enqueue(organization, project=project)
    assert [r["user_id"] for r in row.recipients] == [owner.pk]


def test_inactive_owners_are_not_recipients(organization, owner):
    gone = UserFactory(is_active=False)
    add_org_member(gone, organization, "owner")
    [row, *_] = enqueue(organization)
    assert [r["user_id"] for r in row.recipients] == [owner.pk]


def test_money_in_the_payload_stays_exact(organization, owner):
    [row, *_] = enqueue(organization)
    row.refresh_from_db()
    assert row.payload == {"spend": "80.0000000001", "unpriced_requests": 3}


def test_channels_that_do_not_take_the_kind_get_no_row(organization, owner):
    notification_channel_create(
        organization=organization,
        actor=owner,
        kind="email",
        name="Rotation only",
        email_recipients="sec@example.com",
        event_kinds=["key.rotation"],
    )
    off = notification_channel_create(
        organization=organization, actor=owner, kind="in_app", name="Switched off"
    ).channel
    off.is_active = False
    off.save()
    rows = enqueue(organization)
    assert {r.channel.name for r in rows} == set()  # the org has channels: no defaults
    rows = enqueue(organization, kind="key.rotation", stage="7d")
    assert [r.channel.name for r in rows] == ["Rotation only"]


def test_unknown_kinds_and_bad_key_parts_are_refused(organization, owner):
    with pytest.raises(ValueError, match="unknown notification kind"):
        enqueue(organization, kind="budget.whatever")
    with pytest.raises(ValueError, match="stage"):
        enqueue(organization, stage="80 %")
    with pytest.raises(ValueError, match="stage"):
        enqueue(organization, stage="a|b")
    assert Notification.objects.count() == 0


def test_a_failed_caller_transaction_leaves_no_row(organization, owner):
    with pytest.raises(RuntimeError), transaction.atomic():
        enqueue(organization)
        raise RuntimeError("the budget alert's write failed")
    assert Notification.objects.count() == 0
