"""Celery tasks of the notification outbox: thin, taking ids, idempotent by the claim.

Sending a task twice, redelivering it after a crash (``acks_late`` with
``reject_on_worker_lost``), or two beats firing the sweep at once sends nothing twice:
``delivery.notification_claim`` lets one caller through per attempt.
"""

from __future__ import annotations

from celery import shared_task
from django.conf import settings

from . import delivery

# The hard limit must stay below the claim's lease (settings.py checks it), so a live
# attempt is never taken over by the sweep.
_HARD = settings.NOTIFICATION_DELIVERY_TIME_LIMIT
_SOFT = max(1, _HARD - 10) if _HARD > 10 else max(1, _HARD - 1)


@shared_task(
    name="notifications.notification_deliver",
    acks_late=True,
    reject_on_worker_lost=True,
    time_limit=_HARD,
    soft_time_limit=_SOFT,
    ignore_result=True,
)
def notification_deliver(notification_id: int) -> str:
    """Deliver one notification if it can be claimed; queue its retry after a failure.
    Returns quietly (``skipped``) for a row already taken, done or gone."""
    outcome = delivery.notification_deliver(notification_id=notification_id)
    if outcome.retry_in is not None:
        # The countdown is at most NOTIFICATION_RETRY_MAX_SECONDS, below the broker's
        # visibility timeout; the sweep catches the row if this message is lost anyway.
        notification_deliver.apply_async(args=[notification_id], countdown=outcome.retry_in)
    return outcome.state


@shared_task(
    name="notifications.notifications_sweep",
    acks_late=True,
    reject_on_worker_lost=True,
    time_limit=120,
    soft_time_limit=100,
    ignore_result=True,
)
def notifications_sweep() -> int:
    """Periodic (every minute): queue overdue pending rows and rows stuck in ``sending``
    past the lease. Idempotent: a row queued twice is claimed once."""
    due = delivery.notifications_due()
    for notification_id in due:
        notification_deliver.delay(notification_id)
    return len(due)
