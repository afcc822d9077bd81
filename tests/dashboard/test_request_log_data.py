"""A known dataset for the request-log and CSV tests, written through the real ingestion
service (so rollups, prices and the unique key are the real ones)."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

from usage.services import usage_record_create

# The tests' clock: a Wednesday in the middle of a month, so "this month" and "7d" differ.
NOW = datetime(2026, 11, 18, 15, 0, tzinfo=UTC)
_serial = itertools.count(1)


def add_record(
    project,
    *,
    api_key=None,
    when: datetime | None = None,
    model: str = "gpt-5.4-mini",
    inp: int = 1000,
    cached: int = 0,
    out: int = 200,
    reasoning: int = 0,
    status: str = "completed",
    error_type: str = "",
    source: str = "ingest",
    response_id: str | None = "",
    server_request_id: str | None = None,
    client_request_id: str = "",
    ratelimit_headers: dict | None = None,
    latency_ms: int | None = 420,
):
    """One record; ids are unique unless given. ``response_id=None``: an error without one."""
    n = next(_serial)
    record, created = usage_record_create(
        project=project,
        api_key=api_key,
        source=source,
        model=model,
        response_id=(f"resp_{n:06d}" if response_id == "" else response_id),
        server_request_id=server_request_id if server_request_id is not None else f"req_{n:06d}",
        client_request_id=client_request_id,
        status=status,
        error_type=error_type,
        ratelimit_headers=ratelimit_headers,
        latency_ms=latency_ms,
        occurred_at=when or NOW - timedelta(hours=1),
        usage={
            "input_tokens": inp,
            "input_tokens_details": {"cached_tokens": cached},
            "output_tokens": out,
            "output_tokens_details": {"reasoning_tokens": reasoning},
            "total_tokens": inp + out,
        },
    )
    assert created
    return record
