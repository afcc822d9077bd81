"""POST /api/v1/usage: every bad value is a 400 naming the record and field (never a 500,
never stored, never truncated); 415 for a non-JSON body; guessed tokens throttled."""

from __future__ import annotations

import json

import pytest
import time_machine
from django.utils import timezone

from tests.usage.conftest import response_json
from usage.models import UsageRecord

pytestmark = pytest.mark.django_db
URL = "/api/v1/usage"


def post(client, body, token=None, *, content_type="application/json", raw=None, **extra):
    if token:
        extra["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    data = raw if raw is not None else json.dumps(body)
    return client.post(URL, data=data, content_type=content_type, **extra)


def record(rid="resp_ok", **overrides):
    rec = response_json(rid, created_at=timezone.now().timestamp())
    rec.update(overrides)
    return rec


def envelope(**fields):
    return {"response": record("resp_env"), **fields}


def error_report(**fields):
    return {"response_id": "err_1", "model": "gpt-5.5", "error_type": "RateLimitError", **fields}


NUL = "a\x00b"
LONG = "x" * 5000


def _with_usage(**usage):
    rec = record()
    rec["usage"].update(usage)
    return rec


def _created_at(value):
    rec = record()
    rec["created_at"] = value
    return rec


CASES = {
    # NUL (PostgreSQL cannot store it) in every string field, in every shape.
    "nul in id": (record(id=NUL), "id"),
    "nul in response_id": (envelope(response_id=NUL), "response_id"),
    "nul in server_request_id": (envelope(server_request_id=NUL), "server_request_id"),
    "nul in client_request_id": (envelope(client_request_id=NUL), "client_request_id"),
    "nul in model": (record(model=NUL), "model"),
    "nul in envelope model": (envelope(model=NUL), "model"),
    "nul in status": (record(status=NUL), "status"),
    "nul in error_type": (error_report(error_type=NUL), "error_type"),
    "nul in service_tier": (record(service_tier=NUL), "service_tier"),
    "nul in a ratelimit header name": (
        envelope(ratelimit_headers={f"x-ratelimit-{NUL}": "1"}),
        "ratelimit_headers",
    ),
    "nul in a ratelimit header value": (
        envelope(ratelimit_headers={"x-ratelimit-limit-requests": NUL}),
        "ratelimit_headers.x-ratelimit-limit-requests",
    ),
    # Other control and invisible characters in ids.
    "bell in id": (record(id="resp\x07"), "id"),
    "newline in client_request_id": (envelope(client_request_id="c\n1"), "client_request_id"),
    "bidi override in response_id": (envelope(response_id="resp_\u202egpj"), "response_id"),
    # Wrong types.
    "envelope model a number": (envelope(model=5), "model"),
    "report model a list": (error_report(model=["gpt-5.5"]), "model"),
    "model an object": (error_report(model={"id": "gpt-5.5"}), "model"),
    "report service_tier a number": (error_report(service_tier=1), "service_tier"),
    "envelope service_tier a list": (envelope(service_tier=["flex"]), "service_tier"),
    "response not an object": (record(response="resp_x"), "response"),
    "project a number": (None, "project"),
    "usage details a list": (_with_usage(input_tokens_details=[]), "usage.input_tokens_details"),
    "a count of the other family a string": (_with_usage(prompt_tokens="x"), "usage.prompt_tokens"),
    "ratelimit header value a number": (
        envelope(ratelimit_headers={"x-ratelimit-limit-requests": 500}),
        "ratelimit_headers.x-ratelimit-limit-requests",
    ),
    "ratelimit_headers an empty list": (envelope(ratelimit_headers=[]), "ratelimit_headers"),
    # Booleans are not numbers.
    "retries true": (envelope(retries=True), "retries"),
    "latency_ms true": (envelope(latency_ms=True), "latency_ms"),
    # Out of range, implausible.
    "latency_ms beyond the column": (envelope(latency_ms=2**40), "latency_ms"),
    "latency_ms of 11 days": (envelope(latency_ms=11 * 24 * 3600 * 1000), "latency_ms"),
    "retries 500": (envelope(retries=500), "retries"),
    "total_tokens not input + output": (_with_usage(total_tokens=1), "usage.total_tokens"),
    "created_at with an extreme offset": (_created_at("0001-01-01T00:00:00+05:00"), "created_at"),
    "created_at year 9999 west of UTC": (_created_at("9999-12-31T23:59:59-05:00"), "created_at"),
    # Too long: refused, never truncated.
    "server_request_id of 5000": (envelope(server_request_id=LONG), "server_request_id"),
    "client_request_id of 201": (envelope(client_request_id="c" * 201), "client_request_id"),
    "error_type of 5000": (error_report(error_type=LONG), "error_type"),
    "ratelimit header value of 5000": (
        envelope(ratelimit_headers={"x-ratelimit-limit-requests": LONG}),
        "ratelimit_headers.x-ratelimit-limit-requests",
    ),
    # Empty where a value is needed: "" must not let another value take its place.
    "empty response_id": (envelope(response_id=""), "response_id"),
}


@pytest.mark.parametrize(("body", "field"), CASES.values(), ids=CASES.keys())
def test_a_bad_value_is_a_400_naming_the_record_and_field(client, ingest_token, body, field):
    _, token = ingest_token
    if field == "project":
        payload = {"project": 5, "records": [record()]}
        expected = "project"
    else:
        payload = {"records": [record("resp_first"), body]}
        expected = f"records[1].{field}"
    r = post(client, payload, token)
    assert r.status_code == 400, r.content
    error = r.json()["error"]
    assert error["code"] == "invalid"
    first = error["errors"][0]
    assert first["field"] == expected
    assert first["index"] == (None if field == "project" else 1)
    assert first["message"]
    assert UsageRecord.objects.count() == 0  # nothing of the batch is stored


def test_type_is_ignored_unless_the_record_is_a_stream_event(client, ingest_token):
    """A ``type`` of any JSON type is an extra field of a response: it is ignored."""
    _, token = ingest_token
    r = post(client, [record("resp_t1", type=["x"]), record("resp_t2", type={"a": 1})], token)
    assert r.status_code == 200, r.content
    assert UsageRecord.objects.count() == 2


def test_the_400_says_how_to_fix_a_long_value_and_nothing_is_cut(client, ingest_token):
    _, token = ingest_token
    r = post(client, envelope(client_request_id="c" * 201), token)
    message = r.json()["error"]["errors"][0]["message"]
    assert "at most 200 characters" in message and "never truncated" in message
    assert "(it has 201)" in message


def test_the_400_names_the_control_character(client, ingest_token):
    _, token = ingest_token
    r = post(client, record(id="resp\x00x"), token)
    assert r.status_code == 400
    assert "U+0000 at position 4" in r.json()["error"]["errors"][0]["message"]


def test_values_at_the_bounds_are_stored_as_sent_and_one_past_is_refused(client, ingest_token):
    _, token = ingest_token
    at_bounds = dict(
        client_request_id="c" * 200,
        server_request_id="req_" + "s" * 196,
        latency_ms=3_600_000,
        retries=100,
        response_id="r" * 200,
        ratelimit_headers={"x-ratelimit-limit-requests": "v" * 200, "Date": "today"},
    )
    r = post(client, envelope(**at_bounds), token)
    assert r.status_code == 200, r.content
    rec = UsageRecord.objects.get()
    assert (rec.client_request_id, rec.latency_ms, rec.retries) == ("c" * 200, 3_600_000, 100)
    assert rec.response_id == "r" * 200 and len(rec.server_request_id) == 200
    assert rec.ratelimit_headers == {"x-ratelimit-limit-requests": "v" * 200}
    past = {
        "client_request_id": "c" * 201,
        "server_request_id": "s" * 201,
        "latency_ms": 3_600_001,
        "retries": 101,
        "response_id": "r" * 201,
        "ratelimit_headers": {"x-ratelimit-limit-requests": "v" * 201},
    }
    body = [envelope(**{**at_bounds, "response_id": f"resp_{k}", k: v}) for k, v in past.items()]
    r = post(client, body, token)
    assert r.status_code == 400, r.content
    assert [e["field"] for e in r.json()["error"]["errors"]] == [
        "records[0].client_request_id",
        "records[1].server_request_id",
        "records[2].latency_ms",
        "records[3].retries",
        "records[4].response_id",
        "records[5].ratelimit_headers.x-ratelimit-limit-requests",
    ]
    assert UsageRecord.objects.count() == 1


def test_total_tokens_is_computed_when_left_out_and_checked_when_given(client, ingest_token):
    _, token = ingest_token
    rec = record("resp_no_total")
    del rec["usage"]["total_tokens"]
    assert post(client, [rec, record("resp_right_total")], token).status_code == 200
    assert {r.total_tokens for r in UsageRecord.objects.all()} == {1500}
    r = post(client, _with_usage(total_tokens=1400), token)
    assert r.status_code == 400
    message = r.json()["error"]["errors"][0]["message"]
    assert "1000 + 500 = 1500" in message and "not 1400" in message


def test_a_time_before_2020_is_refused_even_without_retention(client, ingest_token, settings):
    _, token = ingest_token
    settings.USAGE_RAW_RETENTION_DAYS = 0
    r = post(client, [envelope(occurred_at="2001-01-01T00:00:00Z"), _created_at(0)], token)
    assert r.status_code == 400, r.content
    assert [e["field"] for e in r.json()["error"]["errors"]] == [
        "records[0].occurred_at",
        "records[1].created_at",
    ]
    assert UsageRecord.objects.count() == 0


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", ""],
)
def test_a_body_that_is_not_json_is_a_415(client, ingest_token, content_type):
    _, token = ingest_token
    r = post(client, record(), token, content_type=content_type)
    assert r.status_code == 415, r.content
    error = r.json()["error"]
    assert error["code"] == "unsupported_media_type"
    assert "application/json" in error["message"]
    assert UsageRecord.objects.count() == 0
    r = post(client, record(), token, content_type="Application/JSON; charset=utf-8")
    assert r.status_code == 200, r.content


def test_guessed_tokens_are_throttled_per_address(client, ingest_token, settings):
    _, token = ingest_token
    settings.USAGE_INGEST_FAILED_AUTH_PER_MINUTE = 3
    with time_machine.travel("2026-07-01 12:00:20Z", tick=False):
        for i in range(4):  # right tokens do not count as failures
            r = post(client, record(f"resp_ok{i}"), token, REMOTE_ADDR="203.0.113.7")
            assert r.status_code == 200
        for i in range(3):
            r = post(client, record(), f"ingest_guess{i}", REMOTE_ADDR="203.0.113.7")
            assert r.status_code == 401
        r = post(client, record(), "ingest_guess9", REMOTE_ADDR="203.0.113.7")
        assert r.status_code == 429
        assert r["Retry-After"] == "40"
        assert r.json()["error"]["code"] == "too_many_failed_tokens"
        # Over the limit even a right guess learns nothing from this address...
        assert post(client, record(), token, REMOTE_ADDR="203.0.113.7").status_code == 429
        # ...while another address is not affected.
        assert post(client, record(), token, REMOTE_ADDR="198.51.100.2").status_code == 200
    with time_machine.travel("2026-07-01 12:01:01Z", tick=False):
        r = post(client, record("resp_later"), token, REMOTE_ADDR="203.0.113.7")
        assert r.status_code == 200, r.content


def test_a_token_with_a_nul_is_unknown_not_a_500(client, ingest_token):
    """PostgreSQL refuses NUL even in a comparison: the token is refused before the query."""
    r = post(client, record(), "ingest_" + "\x00" * 12 + "_x")
    assert r.status_code == 401, r.content
    assert r.json()["error"]["code"] == "unknown_token"


def test_an_empty_project_names_no_project(client, ingest_token, project):
    """A project without an OpenAI id must not match ``"project": ""``."""
    _, token = ingest_token
    assert not project.openai_project_id
    r = post(client, {"project": "", "records": [record()]}, token)
    assert r.status_code == 403 and r.json()["error"]["code"] == "wrong_project"
    assert UsageRecord.objects.count() == 0


def test_a_batch_whose_cost_overflows_its_rollup_is_a_400_and_nothing_is_stored(
    client, ingest_token
):
    """Three calls of a trillion output tokens on gpt-5.5-pro at priority: each fits a
    record, their hour's rollup would pass what 64 bits of 1e-10 USD hold."""
    big = [
        response_json(
            f"resp_big_{i}",
            model="gpt-5.5-pro",
            inp=0,
            cached=0,
            out=10**12,
            reasoning=0,
            tier="priority",
            created_at=timezone.now().timestamp(),
        )
        for i in range(3)
    ]
    response = post(client, big, ingest_token[1])
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["errors"][0]["field"] == "usage" and "usage" in error["message"]
    assert UsageRecord.objects.count() == 0
