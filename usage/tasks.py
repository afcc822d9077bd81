"""Periodic work of the usage app (schedules live in settings.CELERY_BEAT_SCHEDULE)."""

from __future__ import annotations

from celery import shared_task

from . import services


@shared_task(name="usage.tasks.usage_records_purge", time_limit=1800, soft_time_limit=1700)
def usage_records_purge(batch_size: int = 5000, max_batches: int = 200) -> int:
    """Delete raw records past the retention period, in batches (at most
    batch_size × max_batches a run; the next run continues). Idempotent."""
    return services.usage_records_purge(batch_size=batch_size, max_batches=max_batches)
