"""Template context shared by every console page."""

from __future__ import annotations

from functools import partial

from django.conf import settings

from platformadmin.notifications.inbox import inbox_unread_count


def console(request) -> dict:
    # The bell's unread count is a callable: the template calls it once (one query), and
    # only where the header is rendered (not on JSON, fragments or anonymous pages).
    user = getattr(request, "user", None)
    return {
        "SIMULATOR_URL": settings.OPENAI_SIMULATOR_URL,
        "bell_unread": partial(inbox_unread_count, user=user) if user is not None else 0,
    }
