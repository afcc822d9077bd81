"""POST /api/v1/usage: every status code, the accepted shapes, idempotency."""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal

import pytest
import time_machine
from django.db.models import Sum
from django.urls import reverse
from django.utils import timezone

from tests.usage.conftest import response_json
from usage.models import UsageHourly, UsageRecord
from usage.services import ingestion_token_revoke

pytestmark = pytest.mark.django_db
URL = "/api/v1/usage"


def post(client, body, token=None, raw=None, **headers):
    if token:
        headers["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    data = raw if raw is not None else json.dumps(body)
    return client.post(URL, data=data, content_type="application/json", **headers)


def now_json(rid, **kw):
    return response_json(rid, created_at=timezone.now().timestamp(), **kw)


def test_the_url_is_named():
    assert reverse("api:usage-ingest") == URL


def test_it_stores_a_single_sdk_response(client, ingest_token, project):
    _, token = ingest_token
    r = post(client, now_json("resp_a"), token)
    assert r.status_code == 200, r.content
    assert r.json() == {"received": 1, "created": 1, "duplicates": 0}
    rec = UsageRecord.objects.get()
    assert (rec.project, rec.source, rec.response_id, rec.cost) == (
        project,
        "ingest",
        "resp_a",
        Decimal("0.0191"),
    )


def test_a_replayed_batch_changes_nothing(client, ingest_token):
    _, token = ingest_token
    batch = {"records": [now_json(f"resp_{i}") for i in range(5)]}
    assert post(client, batch, token).json() == {"received": 5, "created": 5, "duplicates": 0}
    batch["records"].append(now_json("resp_new"))
    assert post(client, batch, token).json() == {"received": 6, "created": 1, "duplicates": 5}
    assert UsageRecord.objects.count() == 6
    assert UsageHourly.objects.aggregate(n=Sum("requests"))["n"] == 6


def test_it_accepts_a_list_an_envelope_and_a_stream_terminal_event(client, ingest_token):
    _, token = ingest_token
    envelope = {
        "response": now_json("resp_env"),
        "latency_ms": 120,
        "client_request_id": "c-1",
        "server_request_id": "req_9",
        "retries": 1,
        "ratelimit_headers": {"x-ratelimit-limit-requests": "500"},
    }
    event = {"type": "response.completed", "sequence_number": 9, "response": now_json("resp_evt")}
    r = post(client, [envelope, event], token)
    assert r.status_code == 200 and r.json()["created"] == 2
    env = UsageRecord.objects.get(response_id="resp_env")
    assert (env.latency_ms, env.client_request_id, env.server_request_id, env.retries) == (
        120,
        "c-1",
        "req_9",
        1,
    )
    assert env.ratelimit_headers == {"x-ratelimit-limit-requests": "500"}
    assert UsageRecord.objects.get(response_id="resp_evt").output_tokens == 500


def test_chat_completions_and_embeddings_shapes(client, ingest_token):
    _, token = ingest_token
    chat = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": int(timezone.now().timestamp()),
        "model": "gpt-4.1",
        "choices": [],
        "service_tier": "default",
        "usage": {
            "prompt_tokens": 1000,
            "completion_tokens": 300,
            "total_tokens": 1300,
            "prompt_tokens_details": {"cached_tokens": 400},
            "completion_tokens_details": {"reasoning_tokens": 0},
        },
    }
    emb = {
        "response_id": "emb-1",
        "response": {
            "object": "list",
            "data": [],
            "model": "text-embedding-3-small",
            "usage": {"prompt_tokens": 5000, "total_tokens": 5000},
        },
    }
    r = post(client, {"records": [chat, emb]}, token)
    assert r.status_code == 200, r.content
    c = UsageRecord.objects.get(response_id="chatcmpl-1")
    assert (c.input_tokens, c.cached_input_tokens, c.output_tokens, c.status) == (
        1000,
        400,
        300,
        "completed",
    )
    assert c.cost == Decimal("0.0038")  # (600 × 2 + 400 × 0.5 + 300 × 8) / 1M
    e = UsageRecord.objects.get(response_id="emb-1")
    assert (e.input_tokens, e.output_tokens, e.cost) == (5000, 0, Decimal("0.0001"))


def test_it_accepts_an_error_report(client, ingest_token):
    _, token = ingest_token
    r = post(
        client,
        {
            "response_id": "err-1",
            "model": "gpt-5.5",
            "error_type": "RateLimitError",
            "server_request_id": "req_x",
        },
        token,
    )
    assert r.status_code == 200, r.content
    rec = UsageRecord.objects.get()
    assert (rec.status, rec.error_type, rec.cost) == ("error", "RateLimitError", Decimal(0))


def test_400_names_the_record_index_and_field_and_stores_nothing(client, ingest_token):
    _, token = ingest_token
    bad = now_json("resp_bad")
    bad["usage"]["output_tokens"] = "many"
    no_id = now_json("x")
    del no_id["id"]
    r = post(client, {"records": [now_json("resp_ok"), bad, no_id]}, token)
    assert r.status_code == 400
    errors = r.json()["error"]["errors"]
    assert [(e["index"], e["field"]) for e in errors] == [
        (1, "records[1].usage.output_tokens"),
        (2, "records[2].id"),
    ]
    assert "whole number" in errors[0]["message"]
    assert UsageRecord.objects.count() == 0


def test_400_on_invalid_json_and_too_many_records(client, ingest_token, settings):
    _, token = ingest_token
    r = post(client, None, token, raw="{not json")
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_json"
    settings.USAGE_INGEST_MAX_RECORDS = 2
    r = post(client, [now_json(f"r{i}") for i in range(3)], token)
    assert r.status_code == 400 and r.json()["error"]["errors"][0]["field"] == "records"


def test_400_on_a_record_older_than_retention(client, ingest_token, settings):
    _, token = ingest_token
    settings.USAGE_RAW_RETENTION_DAYS = 30
    old = response_json("old", created_at=(timezone.now() - timedelta(days=31)).timestamp())
    r = post(client, [old], token)
    assert r.status_code == 400
    assert r.json()["error"]["errors"][0]["field"] == "records[0].occurred_at"


def test_401_without_token_and_with_an_unknown_one(client, ingest_token):
    _, token = ingest_token
    r = post(client, now_json("r"))
    assert r.status_code == 401 and r.json()["error"]["code"] == "missing_token"
    assert r["WWW-Authenticate"] == "Bearer"
    r = post(client, now_json("r"), token[:-3] + "xyz")
    assert r.status_code == 401 and r.json()["error"]["code"] == "unknown_token"
    r = post(client, now_json("r"), "ingest_nothere_abc")
    assert r.status_code == 401
    assert UsageRecord.objects.count() == 0


def test_403_for_a_revoked_token(client, ingest_token, owner):
    row, token = ingest_token
    ingestion_token_revoke(token=row, actor=owner)
    r = post(client, now_json("r"), token)
    assert r.status_code == 403 and r.json()["error"]["code"] == "token_revoked"


def test_403_for_another_project(client, ingest_token, organization):
    from tests.factories import ProjectFactory

    _, token = ingest_token
    other = ProjectFactory(organization=organization)
    r = post(client, {"project": str(other.public_id), "records": [now_json("r")]}, token)
    assert r.status_code == 403 and r.json()["error"]["code"] == "wrong_project"
    assert UsageRecord.objects.count() == 0


def test_413_above_the_size_limit(client, ingest_token, settings):
    _, token = ingest_token
    settings.USAGE_INGEST_MAX_BYTES = 2000
    r = post(client, [now_json(f"r{i}") for i in range(10)], token)
    assert r.status_code == 413
    assert UsageRecord.objects.count() == 0


def test_429_with_retry_after_per_token(client, ingest_token, settings, project, owner):
    from usage.services import ingestion_token_create

    _, token = ingest_token
    _, other = ingestion_token_create(project=project, name="other app", actor=owner)
    settings.USAGE_INGEST_RATE_PER_MINUTE = 2
    with time_machine.travel("2026-07-01 12:00:15Z", tick=False):
        assert post(client, now_json("r1"), token).status_code == 200
        assert post(client, now_json("r2"), token).status_code == 200
        r = post(client, now_json("r3"), token)
        assert r.status_code == 429
        assert r["Retry-After"] == "45"
        assert post(client, now_json("r4"), other).status_code == 200  # per token
    with time_machine.travel("2026-07-01 12:01:01Z", tick=False):
        assert post(client, now_json("r3"), token).status_code == 200
    assert UsageRecord.objects.count() == 4


def test_get_is_not_allowed(client):
    assert client.get(URL).status_code == 405


def test_the_openapi_document_is_served(client):
    r = client.get(reverse("api:openapi"))
    assert r.status_code == 200
    doc = r.json()
    assert doc["openapi"].startswith("3.")
    responses = doc["paths"]["/usage"]["post"]["responses"]
    assert set(responses) == {"200", "400", "401", "403", "413", "415", "429"}
