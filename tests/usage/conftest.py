"""Fixtures of the usage tests: an ingestion token and record builders."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from usage.services import ingestion_token_create

WHEN = datetime(2026, 7, 1, 12, 30, tzinfo=UTC)


def response_json(
    rid="resp_1",
    model="gpt-5.5",
    inp=1000,
    cached=200,
    out=500,
    reasoning=100,
    tier="default",
    status="completed",
    created_at=None,
):
    """The JSON of a Responses API Response (what ``response.model_dump()`` gives)."""
    return {
        "id": rid,
        "object": "response",
        "created_at": created_at or WHEN.timestamp(),
        "status": status,
        "model": model,
        "output": [],
        "service_tier": tier,
        "usage": {
            "input_tokens": inp,
            "input_tokens_details": {"cached_tokens": cached},
            "output_tokens": out,
            "output_tokens_details": {"reasoning_tokens": reasoning},
            "total_tokens": inp + out,
        },
    }


@pytest.fixture
def ingest_token(project, owner):
    """(row, plaintext) of a fresh ingestion token for ``project``."""
    return ingestion_token_create(project=project, name="billing-service", actor=owner)
