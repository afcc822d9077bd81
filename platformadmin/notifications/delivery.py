"""Claim, deliver, record: the exactly-once half of the outbox (docs/notifications.md).

A row is delivered by whoever wins a conditional UPDATE (``pending → sending``): a
duplicate task, a redelivered message, a second worker or a second beat's sweep finds the
row already claimed and does nothing. A row left in ``sending`` by a killed worker is
claimable again only after the lease (``NOTIFICATION_CLAIM_LEASE_SECONDS``, longer than the
task's hard time limit, so a live attempt is never taken over). The transport is called
outside any transaction (no database lock held during network I/O), except in-app
delivery, which is a database write made in the transaction that marks the row sent.

The tasks (tasks.py) call these functions; nothing here queues a task.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from platformadmin.redaction import redact

from . import kinds, transports
from .models import Notification, NotificationAttempt, NotificationChannel

log = logging.getLogger(__name__)

# A pending row is swept only this long after it became due: its own task (queued on
# commit, or with a countdown for a retry) normally takes it first.
SWEEP_GRACE = dt.timedelta(seconds=60)
SWEEP_BATCH = 500
ERROR_MAX_CHARS = 2000


@dataclass(frozen=True)
class Outcome:
    """What one delivery run did: ``sent``, ``retry`` (``retry_in`` seconds), ``failed``
    (gave up) or ``skipped`` (nothing to claim: already taken, done, or gone)."""

    state: str
    retry_in: float | None = None
    error: str = ""


def lease() -> dt.timedelta:
    return dt.timedelta(seconds=settings.NOTIFICATION_CLAIM_LEASE_SECONDS)


def retry_delay(attempts: int) -> float:
    """Seconds before the next try after ``attempts`` tries: base × 2^(attempts-1),
    capped at ``NOTIFICATION_RETRY_MAX_SECONDS``."""
    base = float(settings.NOTIFICATION_RETRY_BASE_SECONDS)
    cap = float(settings.NOTIFICATION_RETRY_MAX_SECONDS)
    return min(cap, base * 2 ** max(0, attempts - 1))


def _claimable(now: dt.datetime) -> Q:
    due = Q(state=Notification.State.PENDING) & (
        Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now)
    )
    stale = Q(
        state=Notification.State.SENDING,
        claimed_at__lt=now - lease(),
        attempts__lt=settings.NOTIFICATION_MAX_ATTEMPTS,
    )
    return due | stale


def notification_claim(*, notification_id: int, now: dt.datetime) -> bool:
    """Take the row for one attempt. RACE: this UPDATE is the only guard against a
    second sender; the database applies it to the row once (on PostgreSQL a concurrent
    UPDATE waits for the row lock, then re-checks the WHERE and finds ``sending``), so
    exactly one caller sees one changed row."""
    changed = (
        Notification.objects.filter(pk=notification_id)
        .filter(_claimable(now))
        .update(
            state=Notification.State.SENDING,
            claimed_at=now,
            attempts=F("attempts") + 1,
            updated_at=now,
        )
    )
    return changed == 1


def notification_deliver(*, notification_id: int, now: dt.datetime | None = None) -> Outcome:
    """One delivery attempt of one row, if this caller wins the claim."""
    now = now or timezone.now()
    if not notification_claim(notification_id=notification_id, now=now):
        return Outcome("skipped")
    notification = (
        Notification.objects.select_related("channel", "organization", "project")
        .filter(pk=notification_id)
        .first()
    )
    if notification is None:  # deleted (its channel or organization) after the claim
        return Outcome("skipped")
    # An attempt left unfinished by a killed worker: say so in the history.
    NotificationAttempt.objects.filter(notification=notification, finished_at__isnull=True).update(
        finished_at=now,
        error="Interrupted: the worker stopped before it recorded an outcome; retried after "
        "the claim's lease expired.",
    )
    attempt = NotificationAttempt.objects.create(
        notification=notification, number=notification.attempts, started_at=now
    )
    channel = notification.channel
    if not channel.is_active and notification.kind != kinds.CHANNEL_TEST:
        return _record_failure(
            notification,
            attempt,
            transports.TransportError(
                "The channel was switched off before delivery; not sent.", retryable=False
            ),
            now=now,
            count_against_channel=False,
        )
    try:
        if channel.kind in transports.TRANSACTIONAL_KINDS:
            with transaction.atomic():
                delivered = transports.send(notification, attempt=attempt.number, now=now)
                _record_success(notification, attempt, delivered)
        else:
            delivered = transports.send(notification, attempt=attempt.number, now=now)
            _record_success(notification, attempt, delivered)
    except transports.TransportError as exc:
        return _record_failure(notification, attempt, exc, now=now)
    except Exception as exc:
        # A bug or a time limit (SoftTimeLimitExceeded): recorded as a retryable failure
        # so the row does not wait for the lease, then raised again for the worker's log.
        # Only the type is stored: the message could hold the URL.
        _record_failure(
            notification,
            attempt,
            transports.TransportError(
                f"Unexpected {type(exc).__name__} during delivery (see the worker's log); "
                "retried with backoff."
            ),
            now=now,
        )
        raise
    return Outcome("sent")


@transaction.atomic
def _record_success(
    notification: Notification, attempt: NotificationAttempt, delivered: transports.Delivered
) -> None:
    done = timezone.now()
    Notification.objects.filter(pk=notification.pk, state=Notification.State.SENDING).update(
        state=Notification.State.SENT,
        sent_at=done,
        next_attempt_at=None,
        last_error="",
        updated_at=done,
    )
    NotificationAttempt.objects.filter(pk=attempt.pk).update(
        finished_at=done, succeeded=True, status_code=delivered.status_code
    )
    NotificationChannel.objects.filter(pk=notification.channel_id).update(
        consecutive_failures=0, last_success_at=done, updated_at=done
    )


@transaction.atomic
def _record_failure(
    notification: Notification,
    attempt: NotificationAttempt,
    exc: transports.TransportError,
    *,
    now: dt.datetime,
    count_against_channel: bool = True,
) -> Outcome:
    done = timezone.now()
    # Transports scrub their messages of the URL and secret; redacted by shape again here
    # as the last step before the text is stored and shown.
    error = redact(exc.message)[:ERROR_MAX_CHARS]
    gave_up = not exc.retryable or notification.attempts >= settings.NOTIFICATION_MAX_ATTEMPTS
    retry_in = None
    if gave_up:
        if exc.retryable:
            error = f"{error} Gave up after {notification.attempts} attempts."
        changes = {"state": Notification.State.FAILED, "next_attempt_at": None}
    else:
        retry_in = retry_delay(notification.attempts)
        if exc.retry_after:
            retry_in = min(
                max(retry_in, exc.retry_after), float(settings.NOTIFICATION_RETRY_MAX_SECONDS)
            )
        changes = {
            "state": Notification.State.PENDING,
            "next_attempt_at": now + dt.timedelta(seconds=retry_in),
        }
    # Only while the claim is still ours: a late failure must not undo a newer attempt.
    Notification.objects.filter(
        pk=notification.pk, state=Notification.State.SENDING, claimed_at=notification.claimed_at
    ).update(last_error=error, updated_at=done, **changes)
    NotificationAttempt.objects.filter(pk=attempt.pk).update(
        finished_at=done, succeeded=False, status_code=exc.status_code, error=error
    )
    if count_against_channel:
        NotificationChannel.objects.filter(pk=notification.channel_id).update(
            consecutive_failures=F("consecutive_failures") + 1,
            last_error=error,
            last_failure_at=done,
            updated_at=done,
        )
    log.warning(
        "notification %s attempt %s failed (%s): %s",
        notification.public_id,
        notification.attempts,
        "gave up" if gave_up else f"retry in {retry_in:g} s",
        error,
    )
    return Outcome("failed" if gave_up else "retry", retry_in=retry_in, error=error)


def notifications_due(*, now: dt.datetime | None = None) -> list[int]:
    """The rows the sweep queues: pending rows overdue by more than the grace (their task
    was lost: a broker outage at commit time, a retry message dropped) and rows stuck in
    ``sending`` past the lease (a killed worker). Stuck rows with no attempts left are
    given up here."""
    now = now or timezone.now()
    stale_before = now - lease()
    Notification.objects.filter(
        state=Notification.State.SENDING,
        claimed_at__lt=stale_before,
        attempts__gte=settings.NOTIFICATION_MAX_ATTEMPTS,
    ).update(
        state=Notification.State.FAILED,
        last_error=(
            "The worker stopped during the last attempt (no outcome within the lease); gave up "
            f"after {settings.NOTIFICATION_MAX_ATTEMPTS} attempts."
        ),
        updated_at=now,
    )
    overdue = now - SWEEP_GRACE
    due = Q(state=Notification.State.PENDING) & (
        Q(next_attempt_at__lte=overdue) | Q(next_attempt_at__isnull=True, created_at__lte=overdue)
    )
    stale = Q(state=Notification.State.SENDING, claimed_at__lt=stale_before)
    return list(
        Notification.objects.filter(due | stale)
        .order_by("pk")
        .values_list("pk", flat=True)[:SWEEP_BATCH]
    )
