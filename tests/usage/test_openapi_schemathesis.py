"""usage/openapi.json checked against the implementation: schemathesis generates requests
from the document (valid ones, and ones that break it) and sends them to the Django app
in process (WSGI, offline); every answer must be documented (status, headers, body), no
answer may be a 5xx, and a request the document calls invalid must be refused (4xx).

Bounded: 250 derandomized examples (150 valid, 100 invalid), so the run is repeatable
and takes seconds. ``positive_data_acceptance`` is not among the checks: some rules cannot
be written in JSON Schema (a time within the retention period, cached <= input tokens,
total = input + output), so a document-valid record may still be a documented 400.
"""

from __future__ import annotations

import json

import hypothesis
import jsonschema_rs
import pytest
import schemathesis
from django.core import signals
from django.core.handlers.wsgi import WSGIHandler
from django.db import close_old_connections
from hypothesis import HealthCheck
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from usage.api import OPENAPI_PATH
from usage.models import UsageRecord
from usage.parsing import FORBIDDEN_CHARS
from usage.services import MAX_LATENCY_MS, MAX_RETRIES

pytestmark = pytest.mark.django_db

DOCUMENT = json.loads(OPENAPI_PATH.read_bytes())
SCHEMA = schemathesis.openapi.from_dict(DOCUMENT)
INGEST = SCHEMA["/usage"]["POST"]
APP = WSGIHandler()
CONFORMANCE = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


@pytest.fixture
def wsgi_in_test_transaction():
    """As Django's test client does: requests must not close the test's connection
    (``close_old_connections`` would, since the test's transaction is open)."""
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield APP
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


@pytest.mark.parametrize(
    ("mode", "examples", "checks"),
    [
        (GenerationMode.POSITIVE, 150, CONFORMANCE),
        (
            GenerationMode.NEGATIVE,
            100,
            [*CONFORMANCE, negative_data_rejection],
        ),  # slower to generate
    ],
    ids=["positive", "negative"],
)
def test_the_ingestion_api_matches_its_openapi_document(
    ingest_token, settings, mode, examples, checks, wsgi_in_test_transaction
):
    _, token = ingest_token
    settings.USAGE_INGEST_RATE_PER_MINUTE = 0  # off: hundreds of requests in one minute
    settings.USAGE_RAW_RETENTION_DAYS = 0  # any time from 2020 on is accepted
    seen: dict[int, int] = {}

    @hypothesis.settings(
        max_examples=examples,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
        phases=[hypothesis.Phase.generate],
    )
    @hypothesis.given(case=INGEST.as_strategy(generation_mode=mode))
    def run(case) -> None:
        response = case.call_and_validate(
            app=wsgi_in_test_transaction,
            headers={"Authorization": f"Bearer {token}"},
            checks=checks,
        )
        seen[response.status_code] = seen.get(response.status_code, 0) + 1

    run()
    # The run reached the code behind the door: records were stored or refused as invalid.
    assert seen.get(400, 0) > 0, seen
    if mode == GenerationMode.POSITIVE:
        assert seen.get(200, 0) > 0, seen


def test_the_document_states_the_implementations_bounds():
    """One definition: the document's patterns and bounds are the code's constants."""
    schemas = DOCUMENT["components"]["schemas"]
    envelope = schemas["Envelope"]["properties"]
    pattern = f"^[^{FORBIDDEN_CHARS}]*$"
    assert envelope["client_request_id"]["pattern"] == pattern
    assert schemas["SdkResponse"]["properties"]["id"]["pattern"] == pattern
    assert envelope["latency_ms"]["maximum"] == MAX_LATENCY_MS
    assert envelope["retries"]["maximum"] == MAX_RETRIES
    for name in (
        "response_id",
        "server_request_id",
        "client_request_id",
        "error_type",
        "model",
        "status",
        "service_tier",
    ):
        assert envelope[name]["maxLength"] == UsageRecord._meta.get_field(name).max_length, name


def test_a_record_the_document_refuses_is_refused_and_vice_versa():
    """The audit's two disagreements: ``[{}]`` and an over-long client_request_id."""
    validator = _request_validator()
    assert not validator.is_valid([{}])
    assert not validator.is_valid(
        {"response": {"id": "r", "model": "m"}, "client_request_id": "c" * 201}
    )
    assert validator.is_valid(
        {"response": {"id": "r", "model": "m"}, "client_request_id": "c" * 200}
    )
    assert validator.is_valid({"id": "r", "model": "m", "object": "response"})
    assert not validator.is_valid({"id": "r\x00", "model": "m"})
    assert not validator.is_valid({"response_id": "r", "model": "m", "retries": True})


def _request_validator():
    body = DOCUMENT["paths"]["/usage"]["post"]["requestBody"]["content"]["application/json"][
        "schema"
    ]
    return jsonschema_rs.Draft202012Validator({**body, "components": DOCUMENT["components"]})
