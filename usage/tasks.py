"""Periodic work of the usage app (schedules live in settings.CELERY_BEAT_SCHEDULE)."""

from __future__ import annotations

from celery import shared_task
from django.core.cache import cache

from . import budgets, reservations, services


@shared_task(name="usage.tasks.usage_records_purge", time_limit=1800, soft_time_limit=1700)
def usage_records_purge(batch_size: int = 5000, max_batches: int = 200) -> int:
    """Delete raw records past the retention period, in batches (at most
    batch_size × max_batches a run; the next run continues). Idempotent."""
    return services.usage_records_purge(batch_size=batch_size, max_batches=max_batches)


# Budgets: idempotent by construction (one BudgetAlert per budget, period and threshold),
# so a duplicate delivery or a retry alerts nothing twice.
@shared_task(name="usage.budget_evaluate", time_limit=120, soft_time_limit=100)
def budget_evaluate(budget_id: int) -> int:
    """Evaluate one budget; how many alerts were new. The coalescing flag goes first:
    usage that lands while this runs queues one more evaluation instead of being missed."""
    cache.delete(budgets.evaluation_flag(budget_id))
    result = budgets.budget_evaluate(budget_id=budget_id)
    return len(result.new_alerts) if result is not None else 0


@shared_task(name="usage.budgets_sweep", time_limit=1800, soft_time_limit=1700)
def budgets_sweep() -> int:
    """Evaluate every active budget (catches an evaluation lost with its task); how many."""
    return budgets.budgets_sweep()


@shared_task(
    name="usage.budget_reservations_purge",
    acks_late=True,
    reject_on_worker_lost=True,
    time_limit=1800,
    soft_time_limit=1700,
)
def budget_reservations_purge(batch_size: int = 5000, max_batches: int = 200) -> int:
    """Delete hard-limit reservations settled or expired past the retention, in batches (at
    most batch_size x max_batches a run; the next run continues). Idempotent: a redelivery
    after a lost worker finds those rows gone and deletes nothing twice."""
    return reservations.budget_reservations_purge(batch_size=batch_size, max_batches=max_batches)
