"""Fixtures of the notification tests: the real receivers (tests/notifications/receivers.py)."""

from __future__ import annotations

from tests.notifications.receivers import (  # noqa: F401 (fixtures)
    _smtp_receiver_server,
    _webhook_receiver_server,
    receivers,
    smtp_receiver,
    webhook_receiver,
)
