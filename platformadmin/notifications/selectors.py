"""Reads of notification channels and the outbox (scoped by organization: the caller has
checked the user's access to it with orgs/access.py).

Shared by the delivery side (track A1) and the pages (track A2): each adds its functions.
"""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.db.models import BooleanField, ExpressionWrapper, Q, QuerySet

from orgs.models import Organization

from .models import Notification, NotificationAttempt, NotificationChannel

# --- pages (A2) -------------------------------------------------------------------------


def notification_channels_for_organization(
    *, organization: Organization
) -> QuerySet[NotificationChannel]:
    """The organization's channels by name, each with ``is_failing``: at least
    NOTIFICATION_CHANNEL_FAILING_AFTER consecutive failed attempts (the page's flag)."""
    return (
        NotificationChannel.objects.filter(organization=organization)
        .annotate(
            is_failing=ExpressionWrapper(
                Q(consecutive_failures__gte=settings.NOTIFICATION_CHANNEL_FAILING_AFTER),
                output_field=BooleanField(),
            )
        )
        .order_by("name", "pk")
    )


def notification_channel_by_public_id(*, public_id) -> NotificationChannel | None:
    """One channel with its organization (the caller checks access to it next)."""
    return (
        NotificationChannel.objects.select_related("organization")
        .filter(public_id=public_id)
        .first()
    )


def notification_history(
    *,
    organization: Organization,
    channel: NotificationChannel | None = None,
    kind: str = "",
    state: str = "",
    since: dt.date | None = None,
    until: dt.date | None = None,
) -> QuerySet[Notification]:
    """The organization's notifications, newest first (the ``notifications_org_recent``
    index), with the channel and project of each row loaded: no query per row. Dates are
    whole UTC days, ``until`` included."""
    rows = Notification.objects.filter(organization=organization)
    if channel is not None:
        rows = rows.filter(channel=channel)
    if kind:
        rows = rows.filter(kind=kind)
    if state:
        rows = rows.filter(state=state)
    if since:
        rows = rows.filter(created_at__gte=_utc_midnight(since))
    if until and until < dt.date.max:  # 9999-12-31 would overflow: no upper bound then
        rows = rows.filter(created_at__lt=_utc_midnight(until + dt.timedelta(days=1)))
    return rows.select_related("channel", "project").order_by("-created_at", "-pk")


def _utc_midnight(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time.min, tzinfo=dt.UTC)


def notification_by_public_id(*, public_id) -> Notification | None:
    """One notification with its organization, channel and project (the access check reads
    the organization; no scoping here: the caller checks it next)."""
    return (
        Notification.objects.select_related("organization", "channel", "project")
        .filter(public_id=public_id)
        .first()
    )


def notification_attempts(*, notification: Notification) -> list[NotificationAttempt]:
    return list(notification.delivery_attempts.order_by("number"))


# --- budget pages (B) ---------------------------------------------------------------------


def notifications_for_subject(
    *, organization: Organization, subject: str, periods: set[str] | None = None
) -> list[Notification]:
    """The notifications written about one subject (e.g. ``budget:<uuid>``), optionally
    of some periods only, with their channels: one query for a whole page of alerts."""
    rows = Notification.objects.filter(organization=organization, subject=subject)
    if periods is not None:
        rows = rows.filter(period__in=sorted(periods))
    return list(rows.select_related("channel").order_by("created_at", "pk"))
