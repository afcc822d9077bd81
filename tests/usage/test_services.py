"""usage_record_create: shapes, idempotency, errors, streams cut short, rollups."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError

from tests.usage.conftest import WHEN, response_json
from usage.models import UsageHourly, UsageRecord
from usage.services import usage_record_create

pytestmark = pytest.mark.django_db


def test_it_records_a_response_with_its_cost_and_rollup(project, api_key):
    record, created = usage_record_create(
        project=project,
        api_key=api_key,
        source="playground",
        response=response_json(),
        server_request_id="req_abc",
        client_request_id="cli_1",
        latency_ms=850,
        ratelimit_headers={"x-ratelimit-remaining-requests": "499", "content-type": "x"},
    )
    assert created
    # (800 × 5 + 200 × 0.5 + 500 × 30) / 1M
    assert record.cost == Decimal("0.0191")
    assert record.input_tokens == 1000 and record.cached_input_tokens == 200
    assert record.reasoning_tokens == 100 and record.total_tokens == 1500
    assert record.ratelimit_headers == {"x-ratelimit-remaining-requests": "499"}
    assert record.occurred_at == WHEN
    assert record.server_request_id == "req_abc" and record.client_request_id == "cli_1"
    rollup = UsageHourly.objects.get()
    assert rollup.hour == datetime(2026, 7, 1, 12, tzinfo=UTC)
    assert rollup.key_slot == api_key.pk
    assert (rollup.requests, rollup.cost, rollup.output_tokens) == (1, Decimal("0.0191"), 500)


def test_a_replay_changes_nothing(project, api_key):
    first, created = usage_record_create(
        project=project, api_key=api_key, source="playground", response=response_json()
    )
    again, created_again = usage_record_create(
        project=project, api_key=api_key, source="ingest", response=response_json()
    )
    assert created and not created_again
    assert again.pk == first.pk and again.source == "playground"
    assert UsageRecord.objects.count() == 1
    assert UsageHourly.objects.get().requests == 1


def test_it_records_an_error_without_response(project, api_key):
    r1, c1 = usage_record_create(
        project=project,
        api_key=api_key,
        source="playground",
        model="gpt-5.5",
        status="error",
        error_type="RateLimitError",
        server_request_id="req_1",
        latency_ms=10,
    )
    r2, c2 = usage_record_create(
        project=project,
        api_key=api_key,
        source="playground",
        model="gpt-5.5",
        status="error",
        error_type="RateLimitError",
    )
    assert c1 and c2 and r1.pk != r2.pk
    assert r1.response_id is None and r1.cost == Decimal(0) and r1.status == "error"
    rollup = UsageHourly.objects.get()
    assert (rollup.requests, rollup.errors, rollup.unpriced_requests) == (2, 2, 0)


def test_a_stream_cut_short_keeps_the_usage_known(project, api_key):
    record, created = usage_record_create(
        project=project,
        api_key=api_key,
        source="playground",
        model="gpt-5.4-mini",
        response_id="resp_cut",
        status="incomplete",
        error_type="APIConnectionError",
        usage={"input_tokens": 100, "output_tokens": 40},
    )
    assert created and record.status == "incomplete"
    assert record.cost == Decimal("0.000255")  # (100 × 0.75 + 40 × 4.5) / 1M
    assert UsageHourly.objects.get().errors == 1


def test_an_incomplete_response_keeps_its_own_status(project):
    record, _ = usage_record_create(
        project=project, source="playground", response=response_json(status="incomplete")
    )
    assert record.status == "incomplete"


def test_it_names_the_bad_field(project):
    with pytest.raises(ValidationError) as exc:
        usage_record_create(project=project, source="playground")
    assert "model" in exc.value.message_dict
    bad = response_json()
    bad["usage"]["output_tokens"] = -1
    with pytest.raises(ValidationError) as exc:
        usage_record_create(project=project, source="playground", response=bad)
    assert "response.usage.output_tokens" in exc.value.message_dict
    assert UsageRecord.objects.count() == 0 and UsageHourly.objects.count() == 0


def test_it_refuses_a_key_of_another_project(project, other_organization):
    from tests.factories import ProjectFactory, make_api_key

    other_key = make_api_key(ProjectFactory(organization=other_organization))
    with pytest.raises(ValidationError) as exc:
        usage_record_create(
            project=project, api_key=other_key, source="playground", response=response_json()
        )
    assert "api_key" in exc.value.message_dict


TRICKY = [
    'a "quoted" id',
    "back\\slash\\",
    "comma,{brace}",
    "NULL",
    "",
    "ünïcødé ✓",
    " spaced ",
    'x\\"y',
]


def test_any_text_round_trips_through_a_batch_insert(project):
    from usage.services import build_record, usage_records_ingest

    drafts = [
        build_record(
            project=project,
            source="ingest",
            model=f"m{t}"[:100],
            response_id=f"resp_{i}_{t}",
            client_request_id=t,
            server_request_id=t,
            error_type=t or "",
            status="completed",
            ratelimit_headers={"x-ratelimit-remaining-requests": t},
            usage={},
            occurred_at=datetime(2026, 7, 1, 12, 30, 15, 123456, tzinfo=UTC),
        )
        for i, t in enumerate(TRICKY)
    ]
    assert usage_records_ingest(project=project, drafts=drafts).created == len(TRICKY)
    for i, t in enumerate(TRICKY):
        rec = UsageRecord.objects.get(response_id=f"resp_{i}_{t}")
        assert (rec.model, rec.client_request_id, rec.server_request_id) == (f"m{t}", t, t)
        assert rec.ratelimit_headers == {"x-ratelimit-remaining-requests": t}
        assert rec.occurred_at == datetime(2026, 7, 1, 12, 30, 15, 123456, tzinfo=UTC)
        assert rec.cost == Decimal(0)
    assert UsageHourly.objects.get(model="mNULL").requests == 1
