"""The notification kinds the console sends, and the default channels of an organization.

A channel's ``event_kinds`` is a subset of ``SUBSCRIBABLE`` (empty: every kind);
``channel.test`` goes only to the channel being tested.
"""

from __future__ import annotations

from .models import NotificationChannel

BUDGET_THRESHOLD = "budget.threshold"
BUDGET_FORECAST = "budget.forecast"
KEY_ROTATION = "key.rotation"
CHANNEL_TEST = "channel.test"
# The Admin API sync (platformadmin/sync): a project logged less than OpenAI billed for a
# day (an application is not reporting), and an automated key rotation that failed.
RECONCILIATION_GAP = "reconciliation.gap"
KEY_ROTATION_FAILED = "key.rotation_failed"

KINDS: dict[str, str] = {
    BUDGET_THRESHOLD: "Budget threshold crossed",
    BUDGET_FORECAST: "Budget forecast over the amount",
    KEY_ROTATION: "Key rotation reminder",
    RECONCILIATION_GAP: "Logged spend below OpenAI's bill",
    KEY_ROTATION_FAILED: "Automated key rotation failed",
    CHANNEL_TEST: "Test message",
}
SUBSCRIBABLE: dict[str, str] = {k: v for k, v in KINDS.items() if k != CHANNEL_TEST}

# Created on an organization's first notification when it has no channel at all, so an
# alert always reaches its owners somewhere (docs/notifications.md, "Channels").
DEFAULT_CHANNELS: tuple[tuple[str, str], ...] = (
    (NotificationChannel.Kind.IN_APP, "Console bell"),
    (NotificationChannel.Kind.EMAIL, "Owners by e-mail"),
)
# Kinds whose URL is sealed (and required).
URL_KINDS = {
    NotificationChannel.Kind.WEBHOOK,
    NotificationChannel.Kind.SLACK,
    NotificationChannel.Kind.APPRISE,
}
