"""Celery tasks of the keys app: thin wrappers around services."""

from __future__ import annotations

import datetime as dt

from celery import shared_task

from . import reminders
from .reencrypt import count_on_older_keys, reencrypt_all


@shared_task(name="keys.secrets_reencrypt", time_limit=3600, soft_time_limit=3500)
def secrets_reencrypt(batch_size: int = 500) -> dict:
    """Move every secret to the newest key; idempotent (already-moved rows are skipped)."""
    report = reencrypt_all(batch_size=batch_size)
    return {"moved": report.moved, "remaining": count_on_older_keys()}


@shared_task(name="keys.rotation_reminders_scan", time_limit=900, soft_time_limit=840)
def rotation_reminders_scan(now: str | None = None) -> dict:
    """Send every active key's current rotation reminder stage once (keys/reminders.py).
    Idempotent: a second beat or a retry for the same instant finds the rows written and
    sends nothing. ``now``: an ISO 8601 instant (tests, a catch-up run); default: now."""
    when = dt.datetime.fromisoformat(now) if now else None
    if when is not None and when.tzinfo is None:
        raise ValueError("now must be an aware ISO 8601 instant, e.g. 2026-03-01T00:00:00+00:00")
    report = reminders.rotation_reminders_scan(now=when)
    return {"checked": report.checked, "sent": report.sent, "failed": report.failed}
