"""Celery tasks of the Admin API sync: thin, taking ids (schedules in settings'
CELERY_BEAT_SCHEDULE). A periodic task fans out one task per organization."""

from __future__ import annotations

from celery import shared_task

from orgs.selectors import organization_by_id

from . import audit, pull, push, rotation, services  # noqa: F401  (their tasks register on import)


@shared_task(
    name="sync.usage_pull",
    acks_late=True,
    reject_on_worker_lost=True,
    soft_time_limit=240,
    time_limit=300,
)
def usage_pull(organization_id: int) -> str | None:
    """Pull OpenAI's usage and costs of one organization; idempotent (days are replaced)."""
    organization = organization_by_id(organization_id=organization_id)
    if organization is None:
        return None
    return services.usage_pull(organization=organization).status


@shared_task(
    name="sync.usage_pull_all",
    acks_late=True,
    reject_on_worker_lost=True,
    soft_time_limit=50,
    time_limit=60,
)
def usage_pull_all() -> int:
    """Daily: one ``sync.usage_pull`` per organization with an admin key."""
    ids = services.organizations_to_pull()
    for organization_id in ids:
        usage_pull.delay(organization_id)
    return len(ids)
