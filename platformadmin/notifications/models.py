"""Notification channels and the outbox (docs/notifications.md).

A state change (a budget threshold crossed, a rotation reminder stage reached) writes one
``Notification`` per channel in its own transaction, unique on (channel, subject, kind,
period, stage). A task takes the row's id and claims it by a conditional update
(``pending → sending``); a duplicate task, a second worker or a second beat finds nothing
to claim. Webhook URLs, service URLs and signing secrets are sealed with the key ring.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models

from keys.fields import EncryptedSecretField
from orgs.models import Organization, Project, TimestampedModel


class NotificationChannel(TimestampedModel):
    """Where an organization's notifications go: e-mail, a webhook, Slack, a service by
    apprise URL, or the console's own bell."""

    class Kind(models.TextChoices):
        EMAIL = "email", "E-mail"
        WEBHOOK = "webhook", "Webhook (signed JSON)"
        SLACK = "slack", "Slack (incoming webhook)"
        APPRISE = "apprise", "Other service (apprise URL)"
        IN_APP = "in_app", "In the console (bell)"

    public_id = models.UUIDField("public id", default=uuid.uuid4, unique=True, editable=False)
    organization = models.ForeignKey(
        Organization,
        verbose_name="organization",
        on_delete=models.CASCADE,
        related_name="notification_channels",
    )
    name = models.CharField("name", max_length=100)
    kind = models.CharField("kind", max_length=16, choices=Kind)
    is_active = models.BooleanField("active", default=True)
    # E-mail: extra addresses (one per line); the owners are always recipients.
    email_recipients = models.TextField("extra e-mail recipients", blank=True)
    # Webhook, Slack and apprise: the URL carries credentials, so it is sealed; the hint
    # (scheme and host only) is what pages show.
    url = EncryptedSecretField("URL (sealed)")
    url_hint = models.CharField("URL", max_length=200, blank=True)
    # Webhook: the HMAC-SHA256 signing secret, sealed.
    signing_secret = EncryptedSecretField("signing secret (sealed)")
    # Which notification kinds this channel takes; empty = all.
    event_kinds = models.JSONField("events", default=list, blank=True)
    consecutive_failures = models.PositiveIntegerField("consecutive failures", default=0)
    last_error = models.TextField("last error", blank=True)
    last_failure_at = models.DateTimeField("last failure", null=True, blank=True)
    last_success_at = models.DateTimeField("last success", null=True, blank=True)

    class Meta:
        verbose_name = "notification channel"
        ordering = ["organization_id", "name"]
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "name"],
                name="notifications_channel_name_unique",
                violation_error_message="This organization already has a channel by that name.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.get_kind_display()})"


class Notification(TimestampedModel):
    """One message for one channel: a row of the outbox."""

    class State(models.TextChoices):
        PENDING = "pending", "Pending"
        SENDING = "sending", "Sending"
        SENT = "sent", "Sent"
        FAILED = "failed", "Failed (gave up)"

    public_id = models.UUIDField("public id", default=uuid.uuid4, unique=True, editable=False)
    organization = models.ForeignKey(
        Organization,
        verbose_name="organization",
        on_delete=models.CASCADE,
        related_name="notifications",
    )
    project = models.ForeignKey(
        Project,
        verbose_name="project",
        on_delete=models.CASCADE,
        related_name="notifications",
        null=True,
        blank=True,
    )
    channel = models.ForeignKey(
        NotificationChannel,
        verbose_name="channel",
        on_delete=models.CASCADE,
        related_name="notifications",
    )
    # The unique key's parts: what it is about (e.g. "budget:<uuid>", "key:<uuid>"), what
    # happened (e.g. "budget.threshold"), the period or rotation cycle, and the stage.
    subject = models.CharField("subject", max_length=200)
    kind = models.CharField("kind", max_length=64)
    period = models.CharField("period or cycle", max_length=64)
    stage = models.CharField("stage", max_length=64)
    # The same parts as one string: the webhook's idempotency header.
    unique_key = models.CharField("unique key", max_length=255, unique=True, editable=False)
    title = models.CharField("title", max_length=300)
    body = models.TextField("message")
    payload = models.JSONField("payload", default=dict, blank=True)
    # Resolved when the row is written: [{"user_id": 1, "email": "a@example.com"}, ...].
    recipients = models.JSONField("recipients", default=list, blank=True)
    state = models.CharField("state", max_length=16, choices=State, default=State.PENDING)
    attempts = models.PositiveIntegerField("attempts", default=0)
    next_attempt_at = models.DateTimeField("next attempt", null=True, blank=True)
    claimed_at = models.DateTimeField("claimed at", null=True, blank=True)
    sent_at = models.DateTimeField("sent at", null=True, blank=True)
    last_error = models.TextField("last error", blank=True)

    class Meta:
        verbose_name = "notification"
        ordering = ["-created_at", "-pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["channel", "subject", "kind", "period", "stage"],
                name="notifications_notification_once",
                violation_error_message="This notification was already written for this channel.",
            ),
        ]
        indexes = [
            models.Index(
                fields=["state", "next_attempt_at"],
                name="notifications_due",
                condition=models.Q(state__in=["pending", "sending"]),
            ),
            models.Index(fields=["organization", "-created_at"], name="notifications_org_recent"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} → {self.channel_id} ({self.state})"


class NotificationAttempt(models.Model):
    """One try at delivering a notification, kept for the history page."""

    notification = models.ForeignKey(
        Notification,
        verbose_name="notification",
        on_delete=models.CASCADE,
        related_name="delivery_attempts",
    )
    number = models.PositiveIntegerField("attempt")
    started_at = models.DateTimeField("started at")
    finished_at = models.DateTimeField("finished at", null=True, blank=True)
    succeeded = models.BooleanField("succeeded", default=False)
    status_code = models.PositiveIntegerField("HTTP status", null=True, blank=True)
    error = models.TextField("error", blank=True)

    class Meta:
        verbose_name = "delivery attempt"
        ordering = ["notification_id", "number"]
        constraints = [
            models.UniqueConstraint(
                fields=["notification", "number"],
                name="notifications_attempt_number_unique",
            ),
        ]

    def __str__(self) -> str:
        return f"attempt {self.number} of {self.notification_id}"


class InAppMessage(models.Model):
    """A delivered in-app notification as one user's bell sees it."""

    notification = models.ForeignKey(
        Notification,
        verbose_name="notification",
        on_delete=models.CASCADE,
        related_name="inbox_messages",
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name="user",
        on_delete=models.CASCADE,
        related_name="inbox_messages",
    )
    created_at = models.DateTimeField("delivered at", auto_now_add=True)
    read_at = models.DateTimeField("read at", null=True, blank=True)

    class Meta:
        verbose_name = "in-app message"
        ordering = ["-created_at", "-pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["notification", "user"], name="notifications_inbox_once"
            ),
        ]
        indexes = [
            models.Index(
                fields=["user"],
                name="notifications_inbox_unread",
                condition=models.Q(read_at__isnull=True),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.notification_id} for {self.user_id}"
