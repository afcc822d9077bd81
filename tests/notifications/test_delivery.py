"""Delivery of one row through the real transports into the real receivers: claim,
outcome, backoff, give-up, channel counters, redaction of the stored errors."""

from __future__ import annotations

import datetime as dt
import json

import pytest
import time_machine
from django.utils import timezone

from keys.fields import seal
from platformadmin.notifications import delivery
from platformadmin.notifications.models import (
    InAppMessage,
    Notification,
    NotificationAttempt,
    NotificationChannel,
)
from platformadmin.notifications.services import (
    notification_channel_create,
    notification_send_test,
    notifications_enqueue,
)
from tests.factories import UserFactory, add_org_member

pytestmark = pytest.mark.django_db

T0 = dt.datetime(2026, 12, 2, 9, 0, tzinfo=dt.UTC)


def enqueue(organization, *, stage="80", project=None) -> list[Notification]:
    return notifications_enqueue(
        organization=organization,
        project=project,
        kind="budget.threshold",
        subject="budget:abc",
        period="2026-12",
        stage=stage,
        title="Budget Production at 80 %",
        body="$80.00 of $100.00 + 3 unpriced calls",
        payload={"threshold": 80},
    )


@pytest.fixture
def webhook(organization, owner, webhook_receiver):
    created = notification_channel_create(
        organization=organization,
        actor=owner,
        kind="webhook",
        name="Ops hook",
        url=webhook_receiver.url("/hooks/T0SECRETPATH123/abcdefghijkl"),
    )
    webhook_receiver.secrets["/hooks/T0SECRETPATH123/abcdefghijkl"] = created.signing_secret
    return created.channel


def only(rows, kind) -> Notification:
    [row] = [r for r in rows if r.channel.kind == kind]
    return row


# --- Webhook --------------------------------------------------------------------------


def test_a_webhook_is_signed_and_carries_the_idempotency_key(
    organization, webhook, webhook_receiver
):
    with time_machine.travel(T0, tick=False):
        [row] = enqueue(organization)
        assert delivery.notification_deliver(notification_id=row.pk).state == "sent"
    [request] = webhook_receiver.received()
    assert request.signature_valid is True
    assert request.idempotency_key == row.unique_key
    assert request.headers["x-console-notification-id"] == str(row.public_id)
    assert request.headers["x-console-timestamp"] == str(int(T0.timestamp()))
    body = request.json()
    assert body["schema"] == "console.notification/v1"
    assert body["timestamp"] == int(T0.timestamp())
    assert body["idempotency_key"] == row.unique_key
    assert body["kind"] == "budget.threshold" and body["stage"] == "80"
    assert body["organization"]["id"] == str(organization.public_id)
    assert body["project"] is None
    assert body["data"] == {"threshold": 80}
    assert body["attempt"] == 1
    row.refresh_from_db()
    assert row.state == Notification.State.SENT and row.sent_at is not None
    [attempt] = row.delivery_attempts.all()
    assert attempt.succeeded and attempt.status_code == 200 and attempt.number == 1


def test_a_second_delivery_of_a_sent_row_sends_nothing(organization, webhook, webhook_receiver):
    [row] = enqueue(organization)
    assert delivery.notification_deliver(notification_id=row.pk).state == "sent"
    assert delivery.notification_deliver(notification_id=row.pk).state == "skipped"
    assert len(webhook_receiver.received()) == 1
    assert NotificationAttempt.objects.filter(notification=row).count() == 1


def test_a_5xx_is_retried_with_backoff_then_delivered(
    organization, webhook, webhook_receiver, settings
):
    settings.NOTIFICATION_RETRY_BASE_SECONDS = 30
    webhook_receiver.statuses = [503, 500]
    [row] = enqueue(organization)
    with time_machine.travel(T0, tick=False):
        outcome = delivery.notification_deliver(notification_id=row.pk)
        assert outcome.state == "retry" and outcome.retry_in == 30
        row.refresh_from_db()
        assert row.state == Notification.State.PENDING
        assert row.next_attempt_at == T0 + dt.timedelta(seconds=30)
        assert "HTTP 503" in row.last_error and "retried" in row.last_error
        # Not due yet: nothing to claim.
        assert delivery.notification_deliver(notification_id=row.pk).state == "skipped"
    with time_machine.travel(T0 + dt.timedelta(seconds=30), tick=False):
        assert delivery.notification_deliver(notification_id=row.pk).retry_in == 60
    webhook.refresh_from_db()
    assert webhook.consecutive_failures == 2 and "HTTP 500" in webhook.last_error
    with time_machine.travel(T0 + dt.timedelta(seconds=90), tick=False):
        assert delivery.notification_deliver(notification_id=row.pk).state == "sent"
    webhook.refresh_from_db()
    assert webhook.consecutive_failures == 0 and webhook.last_success_at is not None
    keys = {r.idempotency_key for r in webhook_receiver.received()}
    assert keys == {row.unique_key} and len(webhook_receiver.received()) == 3
    assert [a.succeeded for a in row.delivery_attempts.all()] == [False, False, True]


def test_backoff_doubles_up_to_the_cap(settings):
    settings.NOTIFICATION_RETRY_BASE_SECONDS = 30
    settings.NOTIFICATION_RETRY_MAX_SECONDS = 200
    assert [delivery.retry_delay(n) for n in range(1, 6)] == [30, 60, 120, 200, 200]


def test_a_429_waits_at_least_its_retry_after(organization, webhook, webhook_receiver, settings):
    settings.NOTIFICATION_RETRY_BASE_SECONDS = 30
    settings.NOTIFICATION_RETRY_MAX_SECONDS = 600
    webhook_receiver.statuses = [(429, b"slow down", {"Retry-After": "120"}), (429, b"", {})]
    webhook_receiver.statuses.append((429, b"", {"Retry-After": "86400"}))
    [row] = enqueue(organization)
    now = T0
    delays = []
    for _ in range(3):
        with time_machine.travel(now, tick=False):
            outcome = delivery.notification_deliver(notification_id=row.pk)
        delays.append(outcome.retry_in)
        now += dt.timedelta(hours=1)
    # Retry-After 120 beats the first backoff (30); none: backoff (60); a day: the cap.
    assert delays == [120, 60, 600]


def test_it_gives_up_after_the_last_attempt(organization, webhook, webhook_receiver, settings):
    settings.NOTIFICATION_MAX_ATTEMPTS = 3
    webhook_receiver.statuses = [500, 500, 500, 500]
    [row] = enqueue(organization)
    now = T0
    states = []
    for _ in range(4):
        with time_machine.travel(now, tick=False):
            states.append(delivery.notification_deliver(notification_id=row.pk).state)
        now += dt.timedelta(hours=2)
    assert states == ["retry", "retry", "failed", "skipped"]
    row.refresh_from_db()
    assert row.state == Notification.State.FAILED and row.attempts == 3
    assert "Gave up after 3 attempts" in row.last_error
    assert len(webhook_receiver.received()) == 3


def test_a_4xx_is_not_retried_and_says_what_to_fix(organization, webhook, webhook_receiver):
    webhook_receiver.statuses = [404]
    [row] = enqueue(organization)
    assert delivery.notification_deliver(notification_id=row.pk).state == "failed"
    row.refresh_from_db()
    assert row.state == Notification.State.FAILED
    assert "HTTP 404 (Not Found)" in row.last_error and "Not retried" in row.last_error


def test_a_redirect_is_not_followed(organization, webhook, webhook_receiver):
    webhook_receiver.statuses = [302]
    [row] = enqueue(organization)
    assert delivery.notification_deliver(notification_id=row.pk).state == "failed"
    assert len(webhook_receiver.received()) == 1
    row.refresh_from_db()
    assert "Redirects are not followed" in row.last_error


def test_stored_errors_hold_neither_the_url_nor_a_key(organization, webhook, webhook_receiver):
    echo = (
        b'{"error": "bad token for /hooks/T0SECRETPATH123/abcdefghijkl", '
        b'"hint": "sk-proj-abcdefghijklmnopqrstuvwx"}'
    )
    webhook_receiver.statuses = [(400, echo)]
    [row] = enqueue(organization)
    delivery.notification_deliver(notification_id=row.pk)
    row.refresh_from_db()
    webhook.refresh_from_db()
    attempt = row.delivery_attempts.get()
    for text in (row.last_error, webhook.last_error, attempt.error):
        assert "HTTP 400" in text
        assert "T0SECRETPATH123" not in text and "abcdefghijkl" not in text
        assert "abcdefghijklmnopqrstuvwx" not in text


def test_loopback_is_refused_at_send_time_when_not_allowed(
    organization, webhook, webhook_receiver, settings
):
    settings.OUTBOUND_ALLOWED_ORIGINS = []  # the channel was saved while it was allowed
    [row] = enqueue(organization)
    assert delivery.notification_deliver(notification_id=row.pk).state == "failed"
    assert webhook_receiver.received() == []
    row.refresh_from_db()
    assert "Refused before sending" in row.last_error and "loopback" in row.last_error
    assert "T0SECRETPATH123" not in row.last_error


def test_the_metadata_address_is_refused_at_send_time(organization, owner, settings):
    channel = notification_channel_create(
        organization=organization,
        actor=owner,
        kind="webhook",
        name="Hook",
        url="https://hooks.example.com/x",
    ).channel
    # As if DNS or the stored value changed after the check at save time.
    seal(channel, "url", "http://169.254.169.254/latest/meta-data/")
    channel.save()
    [row] = enqueue(organization)
    assert delivery.notification_deliver(notification_id=row.pk).state == "failed"
    row.refresh_from_db()
    assert "cloud metadata" in row.last_error


# --- Slack, e-mail, in-app, apprise -----------------------------------------------------


def test_slack_gets_its_incoming_webhook_format(organization, owner, webhook_receiver):
    notification_channel_create(
        organization=organization,
        actor=owner,
        kind="slack",
        name="Slack",
        url=webhook_receiver.url("/services/T000/B000/XXXXXXXXXXXX"),
    )
    [row] = enqueue(organization)
    assert delivery.notification_deliver(notification_id=row.pk).state == "sent"
    [request] = webhook_receiver.received()
    body = request.json()
    assert body["text"].startswith("Budget Production at 80 %")
    assert body["blocks"][0] == {
        "type": "header",
        "text": {"type": "plain_text", "text": "Budget Production at 80 %"},
    }
    assert body["blocks"][1]["text"]["text"] == "$80.00 of $100.00 + 3 unpriced calls"


def test_email_goes_to_the_owners_and_the_extra_addresses(
    organization, project, owner, project_owner, smtp_receiver
):
    notification_channel_create(
        organization=organization,
        actor=owner,
        kind="email",
        name="Finance",
        email_recipients="finance@example.com\nowner@example.com",
    )
    [row] = enqueue(organization, project=project)
    assert delivery.notification_deliver(notification_id=row.pk).state == "sent"
    [mail] = smtp_receiver.wait_for(1)
    assert sorted(mail.rcpt_tos) == sorted(
        ["owner@example.com", "projowner@example.com", "finance@example.com"]
    )
    assert mail.subject == "Budget Production at 80 %"
    assert "$80.00 of $100.00 + 3 unpriced calls" in mail.text
    assert mail.message["X-Console-Notification-Id"] == str(row.public_id)
    assert mail.message["Message-ID"].endswith("@localhost>")


def test_an_email_with_no_address_at_all_is_given_up(organization, smtp_receiver):
    nobody = UserFactory(email="")
    add_org_member(nobody, organization, "owner")
    rows = enqueue(organization)
    row = only(rows, "email")
    assert delivery.notification_deliver(notification_id=row.pk).state == "failed"
    row.refresh_from_db()
    assert "No recipient has an e-mail address" in row.last_error


def test_in_app_writes_one_message_per_recipient_once(organization, project, owner, project_owner):
    rows = enqueue(organization, project=project)
    row = only(rows, "in_app")
    assert delivery.notification_deliver(notification_id=row.pk).state == "sent"
    assert delivery.notification_deliver(notification_id=row.pk).state == "skipped"
    assert sorted(InAppMessage.objects.values_list("user_id", flat=True)) == sorted(
        [owner.pk, project_owner.pk]
    )


def test_someone_removed_before_delivery_is_not_told(organization, owner, reader):
    second = UserFactory()
    membership = add_org_member(second, organization, "owner")
    row = only(enqueue(organization), "in_app")
    membership.delete()
    delivery.notification_deliver(notification_id=row.pk)
    assert list(InAppMessage.objects.values_list("user_id", flat=True)) == [owner.pk]


def test_apprise_delivers_to_an_allow_listed_generic_receiver(
    organization, owner, webhook_receiver
):
    port = webhook_receiver.port
    notification_channel_create(
        organization=organization,
        actor=owner,
        kind="apprise",
        name="Generic JSON",
        url=f"json://127.0.0.1:{port}/apprise",
    )
    [row] = enqueue(organization)
    assert delivery.notification_deliver(notification_id=row.pk).state == "sent"
    [request] = webhook_receiver.received()
    assert request.path == "/apprise"
    assert json.loads(request.body)["title"] == "Budget Production at 80 %"


def test_apprise_failures_are_retried_and_scrubbed(organization, owner, webhook_receiver):
    webhook_receiver.statuses = [500]
    notification_channel_create(
        organization=organization,
        actor=owner,
        kind="apprise",
        name="Generic JSON",
        url=f"json://127.0.0.1:{webhook_receiver.port}/apprise/SECRETTOKEN99",
    )
    [row] = enqueue(organization)
    assert delivery.notification_deliver(notification_id=row.pk).state == "retry"
    row.refresh_from_db()
    assert "JSON did not accept the notification" in row.last_error
    assert "SECRETTOKEN99" not in row.last_error


# --- Claims, leases, channels switched off ------------------------------------------------


def test_a_row_stuck_in_sending_is_claimed_again_only_after_the_lease(
    organization, webhook, webhook_receiver, settings
):
    settings.NOTIFICATION_CLAIM_LEASE_SECONDS = 180
    [row] = enqueue(organization)
    with time_machine.travel(T0, tick=False):
        assert delivery.notification_claim(notification_id=row.pk, now=timezone.now())
        NotificationAttempt.objects.create(notification=row, number=1, started_at=T0)
    with time_machine.travel(T0 + dt.timedelta(seconds=179), tick=False):
        assert delivery.notification_deliver(notification_id=row.pk).state == "skipped"
        assert delivery.notifications_due() == []
    with time_machine.travel(T0 + dt.timedelta(seconds=181), tick=False):
        assert delivery.notifications_due() == [row.pk]
        assert delivery.notification_deliver(notification_id=row.pk).state == "sent"
    first, second = row.delivery_attempts.order_by("number")
    assert first.error.startswith("Interrupted") and not first.succeeded
    assert second.number == 2 and second.succeeded
    assert webhook_receiver.received()[0].json()["attempt"] == 2


def test_the_sweep_picks_overdue_rows_only_after_the_grace(organization, owner):
    with time_machine.travel(T0, tick=False):
        rows = enqueue(organization)
    with time_machine.travel(T0 + dt.timedelta(seconds=30), tick=False):
        assert delivery.notifications_due() == []  # their own tasks are on the way
    with time_machine.travel(T0 + dt.timedelta(seconds=61), tick=False):
        assert delivery.notifications_due() == sorted(r.pk for r in rows)


def test_the_sweep_gives_up_rows_stuck_after_the_last_attempt(organization, owner, settings):
    settings.NOTIFICATION_MAX_ATTEMPTS = 1
    row = enqueue(organization)[0]
    with time_machine.travel(T0, tick=False):
        assert delivery.notification_claim(notification_id=row.pk, now=timezone.now())
    with time_machine.travel(T0 + dt.timedelta(hours=1), tick=False):
        assert row.pk not in delivery.notifications_due()
    row.refresh_from_db()
    assert row.state == Notification.State.FAILED and "gave up" in row.last_error


def test_a_switched_off_channel_sends_nothing_and_is_not_flagged(
    organization, webhook, webhook_receiver
):
    [row] = enqueue(organization)
    NotificationChannel.objects.filter(pk=webhook.pk).update(is_active=False)
    assert delivery.notification_deliver(notification_id=row.pk).state == "failed"
    assert webhook_receiver.received() == []
    webhook.refresh_from_db()
    assert webhook.consecutive_failures == 0


def test_a_test_message_goes_even_to_a_switched_off_channel(
    organization, owner, webhook, webhook_receiver
):
    NotificationChannel.objects.filter(pk=webhook.pk).update(is_active=False)
    webhook.refresh_from_db()
    first = notification_send_test(channel=webhook, actor=owner)
    second = notification_send_test(channel=webhook, actor=owner)
    assert first.stage != second.stage
    assert delivery.notification_deliver(notification_id=first.pk).state == "sent"
    [request] = webhook_receiver.received()
    assert request.json()["kind"] == "channel.test" and request.signature_valid


def test_a_missing_row_is_skipped_quietly():
    assert delivery.notification_deliver(notification_id=987654).state == "skipped"


def test_two_sweeps_of_the_same_instant_deliver_once(organization, webhook, webhook_receiver):
    with time_machine.travel(T0, tick=False):
        [row] = enqueue(organization)
    with time_machine.travel(T0 + dt.timedelta(minutes=5), tick=False):
        queued = delivery.notifications_due() + delivery.notifications_due()  # two beats
        assert queued == [row.pk, row.pk]
        outcomes = [delivery.notification_deliver(notification_id=pk).state for pk in queued]
    assert outcomes == ["sent", "skipped"]
    assert len(webhook_receiver.received()) == 1
