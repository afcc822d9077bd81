"""Celery tasks of the keys app: thin wrappers around services."""

from __future__ import annotations

from celery import shared_task

from .reencrypt import count_on_older_keys, reencrypt_all


@shared_task(name="keys.secrets_reencrypt", time_limit=3600, soft_time_limit=3500)
def secrets_reencrypt(batch_size: int = 500) -> dict:
    """Move every secret to the newest key; idempotent (already-moved rows are skipped)."""
    report = reencrypt_all(batch_size=batch_size)
    return {"moved": report.moved, "remaining": count_on_older_keys()}
