"""Fixtures of the usage tests: an ingestion token and record builders."""

from __future__ import annotations

import importlib
from datetime import UTC, datetime

import pytest
from django.apps import apps

from usage.services import ingestion_token_create

WHEN = datetime(2026, 7, 1, 12, 30, tzinfo=UTC)


def response_json(rid="resp_1", model="gpt-5.5", inp=1000, cached=200, out=500, reasoning=100,
                  tier="default", status="completed", created_at=None):
    """The JSON of a Responses API Response (what ``response.model_dump()`` gives)."""
    return {
        "id": rid, "object": "response", "created_at": created_at or WHEN.timestamp(),
        "status": status, "model": model, "output": [], "service_tier": tier,
        "usage": {"input_tokens": inp, "input_tokens_details": {"cached_tokens": cached},
                  "output_tokens": out, "output_tokens_details": {"reasoning_tokens": reasoning},
                  "total_tokens": inp + out},
    }


@pytest.fixture
def ingest_token(project, owner):
    """(row, plaintext) of a fresh ingestion token for ``project``."""
    return ingestion_token_create(project=project, name="billing-service", actor=owner)


def ensure_catalog() -> None:
    """Re-seed the model catalog if a transactional test's flush emptied it."""
    from usage.models import CatalogModel

    if not CatalogModel.objects.exists():
        importlib.import_module("usage.migrations.0002_seed_catalog").seed(apps, None)


@pytest.fixture(autouse=True)
def _seeded_catalog(request):
    """Every database test here sees the seeded catalog, whatever ran before it."""
    marker = request.node.get_closest_marker("django_db")
    if marker is None:
        return
    request.getfixturevalue("transactional_db" if marker.kwargs.get("transaction") else "db")
    ensure_catalog()
