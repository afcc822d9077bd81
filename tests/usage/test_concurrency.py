"""The same batch sent 3 times at once: exactly the distinct rows, exact cost and rollups.

Runs with real transactions (``transactional_db``) and one thread per request, each
with its own database connection; CI runs it on PostgreSQL.
"""

from __future__ import annotations

import json
import threading
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.db import connection
from django.db.models import Sum
from django.test import Client
from django.utils import timezone

from tests.usage.conftest import response_json
from usage.models import UsageHourly, UsageRecord
from usage.services import ingestion_token_create

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        connection.vendor == "sqlite",
        reason="in-memory SQLite shares one cache between threads and answers 'table is locked' "
        "instead of waiting; run with DATABASE_URL=postgres://... (CI does)",
    ),
]


def _send_concurrently(token: str, bodies: list[list[dict]]) -> list:
    barrier = threading.Barrier(len(bodies))
    results: list = [None] * len(bodies)

    def worker(i: int) -> None:
        try:
            barrier.wait(timeout=10)
            r = Client().post(
                "/api/v1/usage",
                data=json.dumps({"records": bodies[i]}),
                content_type="application/json",
                HTTP_AUTHORIZATION=f"Bearer {token}",
            )
            results[i] = (r.status_code, r.json())
        except Exception as exc:  # reported by the assertion below
            results[i] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(bodies))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    return results


def test_the_same_batch_three_times_concurrently(project, owner, settings):
    settings.USAGE_INGEST_RATE_PER_MINUTE = 0
    _, token = ingestion_token_create(project=project, name="app", actor=owner)
    now = timezone.now().timestamp()
    models = ["gpt-5.5", "gpt-5.4-mini", "gpt-4.1-nano", "whisper-1"]  # the last is unpriced
    batch = [
        response_json(
            f"resp_{i:04d}",
            model=models[i % 4],
            inp=1000 + i,
            cached=i % 300,
            out=200 + i,
            reasoning=i % 100,
            tier=["default", "flex", "priority", "default"][i % 4],
            created_at=now - (i % 5) * 3600,
        )
        for i in range(300)
    ]
    results = _send_concurrently(token, [batch, batch, batch])
    assert all(isinstance(r, tuple) and r[0] == 200 for r in results), results
    assert sum(r[1]["created"] for r in results) == 300
    assert sum(r[1]["duplicates"] for r in results) == 600

    assert UsageRecord.objects.count() == 300
    assert UsageRecord.objects.values("response_id").distinct().count() == 300
    # The exact cost, computed here independently of the engine.
    price = {
        "gpt-5.5": (Decimal(5), Decimal("0.5"), Decimal(30), Decimal("2.5")),
        "gpt-5.4-mini": (Decimal("0.75"), Decimal("0.075"), Decimal("4.5"), None),
        "gpt-4.1-nano": (Decimal("0.1"), Decimal("0.025"), Decimal("0.4"), None),
    }
    factor = {"default": Decimal(1), "flex": Decimal("0.5"), "priority": None}
    expected = Decimal(0)
    unpriced = 0
    for r in batch:
        u = r["usage"]
        p = price.get(r["model"])
        f = factor[r["service_tier"]] if r["service_tier"] != "priority" else (p[3] if p else None)
        if p is None or f is None:
            unpriced += 1
            continue
        cached = u["input_tokens_details"]["cached_tokens"]
        expected += (
            ((u["input_tokens"] - cached) * p[0] + cached * p[1] + u["output_tokens"] * p[2])
            / 1_000_000
            * f
        )
    assert UsageRecord.objects.aggregate(s=Sum("cost"))["s"] == expected
    assert UsageRecord.objects.filter(cost__isnull=True).count() == unpriced

    rollups = UsageHourly.objects.aggregate(
        n=Sum("requests"), c=Sum("cost"), u=Sum("unpriced_requests"), i=Sum("input_tokens")
    )
    assert rollups == {
        "n": 300,
        "c": expected,
        "u": unpriced,
        "i": sum(r["usage"]["input_tokens"] for r in batch),
    }
    # and the checker agrees, bucket by bucket
    call_command("check_rollups")


def test_overlapping_batches_concurrently(project, owner, settings):
    settings.USAGE_INGEST_RATE_PER_MINUTE = 0
    _, token = ingestion_token_create(project=project, name="app", actor=owner)
    now = timezone.now().timestamp()
    recs = [response_json(f"r{i:03d}", created_at=now) for i in range(150)]
    results = _send_concurrently(token, [recs[0:100], recs[50:150], recs[25:125], recs[::-1]])
    assert all(isinstance(r, tuple) and r[0] == 200 for r in results), results
    assert sum(r[1]["created"] for r in results) == 150
    assert UsageRecord.objects.count() == 150
    assert UsageHourly.objects.aggregate(n=Sum("requests"))["n"] == 150
    call_command("check_rollups")
