"""A known dataset for the dashboard tests: two projects of one organization, a key each,
priced, unpriced, failed and cut-short calls on several days, in a billing timezone with
a whole-hour offset; sums computed here from the raw records, never from the rollups."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from tests.conftest import ensure_catalog
from tests.factories import ProjectFactory, make_api_key
from usage.models import UsageRecord
from usage.services import usage_record_create

# 20 Nov 2026 15:00 UTC = 10:00 in New York (EST, UTC-5)
NOW = datetime(2026, 11, 20, 15, 0, tzinfo=UTC)


@dataclass
class Dataset:
    organization: object
    alpha: object
    beta: object
    alpha_key: object
    beta_key: object
    records: list


def _call(project, key, n, when, *, model="gpt-4.1", status="completed", error="", inp=0):
    return usage_record_create(
        project=project,
        api_key=key,
        source="ingest",
        model=model,
        response_id=None if error or status == "failed" else f"resp_{project.pk}_{n}",
        status=status,
        error_type=error,
        usage={
            "input_tokens": inp or 1000 * (n % 7 + 1),
            "input_tokens_details": {"cached_tokens": 100 * (n % 3)},
            "output_tokens": 200 + n,
            "output_tokens_details": {"reasoning_tokens": 10 * (n % 4)},
        },
        occurred_at=when,
    )[0]


@pytest.fixture
def dataset(organization, project, api_key) -> Dataset:
    return make_dataset(organization, project, api_key)


def make_dataset(organization, project, api_key) -> Dataset:
    """Records on 1..20 Nov 2026 (New York days) for two projects, plus one call in October
    and one at 23:30 local on 19 Nov (04:30 UTC on the 20th) that belongs to the 19th."""
    ensure_catalog()
    organization.billing_timezone = "America/New_York"
    organization.save(update_fields=["billing_timezone"])
    alpha, alpha_key = project, api_key
    beta = ProjectFactory(organization=organization, name="Beta", environment="development")
    beta_key = make_api_key(beta)
    start = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
    n = 0
    for day in range(20):
        when = start + timedelta(days=day)
        for project_, key_ in ((alpha, alpha_key), (beta, beta_key)):
            for model in ("gpt-4.1", "gpt-4.1-mini") if day % 2 == 0 else ("gpt-4.1",):
                n += 1
                _call(project_, key_, n, when + timedelta(minutes=n % 50), model=model)
    # unpriced: a model with no price
    _call(alpha, alpha_key, 900, start + timedelta(days=3), model="custom-unpriced-model")
    _call(beta, None, 901, start + timedelta(days=4), model="custom-unpriced-model")
    # errors and a stream cut short
    _call(alpha, alpha_key, 902, start + timedelta(days=5), status="failed", error="rate_limit")
    _call(beta, beta_key, 903, start + timedelta(days=6), status="incomplete", error="stream_cut")
    _call(alpha, alpha_key, 904, start + timedelta(days=6), status="incomplete")
    # late evening of 19 Nov in New York, already 20 Nov in UTC
    _call(beta, beta_key, 905, datetime(2026, 11, 20, 4, 30, tzinfo=UTC))
    # October: outside "this month"
    _call(alpha, alpha_key, 906, datetime(2026, 10, 15, 12, tzinfo=UTC))
    return Dataset(
        organization=organization,
        alpha=alpha,
        beta=beta,
        alpha_key=alpha_key,
        beta_key=beta_key,
        records=list(UsageRecord.objects.order_by("pk")),
    )


def raw_sums(records, *, start, end, projects=None, key=None, model=None) -> dict:
    """Sums over raw records, the way a person would add them up."""
    chosen = [
        r
        for r in records
        if start <= r.occurred_at < end
        and (projects is None or r.project_id in {p.pk for p in projects})
        and (key is None or r.api_key_id == key.pk)
        and (model is None or r.model == model)
    ]
    priced = [r for r in chosen if r.cost is not None]
    return {
        "requests": len(chosen),
        "cost": sum((r.cost for r in priced), Decimal(0)) if priced else None,
        "unpriced": len(chosen) - len(priced),
        "input": sum(r.input_tokens for r in chosen),
        "cached": sum(r.cached_input_tokens for r in chosen),
        "output": sum(r.output_tokens for r in chosen),
        "reasoning": sum(r.reasoning_tokens for r in chosen),
        "total": sum(r.total_tokens for r in chosen),
        "incomplete": sum(1 for r in chosen if r.status == "incomplete"),
        "errors": sum(
            1
            for r in chosen
            if r.status != "incomplete" and (r.error_type or r.status in ("error", "failed"))
        ),
    }
