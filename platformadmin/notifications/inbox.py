"""The bell: a user's delivered in-app notifications (reads and the mark-as-read writes).

An ``InAppMessage`` belongs to one user; nobody else reads or marks it. Only messages of
organizations the user still belongs to (directly or through a project) are shown and
counted: someone removed from an organization stops seeing its alerts.
"""

from __future__ import annotations

import datetime as dt
import uuid

from django.db import transaction
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.utils import timezone

from orgs.models import OrganizationMembership, ProjectMembership

from .models import InAppMessage

INBOX_PAGE_SIZE = 50


def _still_a_member(user) -> Q:
    """Messages whose organization the user still belongs to (either kind of role)."""
    return Q(
        Exists(
            OrganizationMembership.objects.filter(
                organization=OuterRef("notification__organization"), user=user
            )
        )
    ) | Q(
        Exists(
            ProjectMembership.objects.filter(
                project__organization=OuterRef("notification__organization"), user=user
            )
        )
    )


def inbox_messages_for_user(*, user) -> QuerySet[InAppMessage]:
    """The user's messages, newest first, with what a row shows loaded (no N+1)."""
    if not user.is_authenticated:
        return InAppMessage.objects.none()
    return (
        InAppMessage.objects.filter(user=user)
        .filter(_still_a_member(user))
        .select_related("notification__organization", "notification__project")
        .order_by("-created_at", "-pk")
    )


def inbox_unread_count(*, user) -> int:
    """The badge: one query (the partial index on unread messages per user)."""
    if not user.is_authenticated:
        return 0
    return (
        InAppMessage.objects.filter(user=user, read_at__isnull=True)
        .filter(_still_a_member(user))
        .count()
    )


@transaction.atomic
def inbox_message_mark_read(*, user, notification_id, now: dt.datetime | None = None) -> int:
    """Mark the user's message for that notification read; 0 when it is not theirs (or was
    already read): the caller answers 404 then, as for anything not one's own."""
    try:
        public_id = uuid.UUID(str(notification_id))
    except (TypeError, ValueError, AttributeError):
        return 0
    # Conditional update: a second click (or two tabs) finds nothing left to change.
    return (
        inbox_messages_for_user(user=user)
        .filter(notification__public_id=public_id, read_at__isnull=True)
        .update(read_at=now or timezone.now())
    )


def inbox_message_exists(*, user, notification_id) -> bool:
    try:
        public_id = uuid.UUID(str(notification_id))
    except (TypeError, ValueError, AttributeError):
        return False
    return inbox_messages_for_user(user=user).filter(notification__public_id=public_id).exists()


@transaction.atomic
def inbox_mark_all_read(*, user, now: dt.datetime | None = None) -> int:
    """Mark every unread message of the user read; returns how many changed."""
    return (
        inbox_messages_for_user(user=user)
        .filter(read_at__isnull=True)
        .update(read_at=now or timezone.now())
    )
