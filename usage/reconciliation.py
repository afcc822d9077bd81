"""The logged side of a reconciliation with OpenAI's own figures: what the console saw,
per UTC day (OpenAI's usage and cost buckets are UTC days), project and model, read from
the hourly rollups (whole UTC hours, so a UTC day is exactly 24 of them)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

from django.db.models import Sum
from django.db.models.functions import TruncDate

from .models import UsageHourly


def _utc_midnight(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


def logged_daily_totals(*, organization, since: date, until: date) -> list[dict]:
    """Rows of {day, project_id, model, requests, errors, input_tokens, cached_input_tokens,
    output_tokens, cost, unpriced_requests} for the UTC days ``since`` … ``until``
    (inclusive). ``cost`` is the priced records' exact sum; unpriced calls are counted apart."""
    rows = (
        UsageHourly.objects.filter(
            organization=organization,
            hour__gte=_utc_midnight(since),
            hour__lt=_utc_midnight(until + timedelta(days=1)),
        )
        .annotate(day=TruncDate("hour", tzinfo=UTC))
        .values("day", "project_id", "model")
        .annotate(
            s_requests=Sum("requests"),
            s_errors=Sum("errors"),
            s_input=Sum("input_tokens"),
            s_cached=Sum("cached_input_tokens"),
            s_output=Sum("output_tokens"),
            s_cost=Sum("cost"),
            s_unpriced=Sum("unpriced_requests"),
        )
        .order_by("day", "project_id", "model")
    )
    return [
        {
            "day": row["day"],
            "project_id": row["project_id"],
            "model": row["model"],
            "requests": row["s_requests"] or 0,
            "errors": row["s_errors"] or 0,
            "input_tokens": row["s_input"] or 0,
            "cached_input_tokens": row["s_cached"] or 0,
            "output_tokens": row["s_output"] or 0,
            "cost": row["s_cost"],
            "unpriced_requests": row["s_unpriced"] or 0,
        }
        for row in rows
    ]
