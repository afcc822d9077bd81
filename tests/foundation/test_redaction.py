"""Secrets stay out of logs and error pages."""

from __future__ import annotations

import base64
import html
import io
import json
import logging
import sys
from urllib.parse import quote, quote_plus

import pytest
from django.contrib.auth.models import AnonymousUser
from django.test import RequestFactory
from django.urls import path
from django.views.debug import ExceptionReporter, get_exception_reporter_class

from keys.services import api_key_create_unaudited
from platformadmin.redaction import (
    RedactSecretsFilter,
    SecretRedactingReporterFilter,
    header_secrets,
    redact,
    scrub,
)
from tests.factories import fake_secret


def test_redact_replaces_key_shaped_values():
    secret = fake_secret()
    text = redact(f"calling with {secret} now")
    assert secret not in text
    assert "sk-proj-…[redacted]" in text


def test_the_log_filter_redacts_formatted_messages():
    secret = fake_secret("svcacct")
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "key=%s", (secret,), None)
    assert RedactSecretsFilter().filter(record)
    assert secret not in record.getMessage()


@pytest.mark.django_db
def test_a_debug_error_page_shows_no_secret(settings, project):
    settings.DEBUG = True
    secret = fake_secret()
    request = RequestFactory().post("/x", {"secret": secret})
    try:
        api_key_create_unaudited(
            organization=project.organization,
            project=project,
            name="x",
            secret=secret,
            kind="admin",
        )
    except Exception as exc:  # the project is wrong for an admin key: a ValidationError
        reporter = ExceptionReporter(request, type(exc), exc, exc.__traceback__)
        html = reporter.get_traceback_html()
    else:
        pytest.fail("an admin key with a project must be refused")
    assert secret not in html
    assert secret[-12:] not in html


# --- Shapes of every key format the console stores ----------------------------------------

SHAPES = {
    "openai": "sk-" + "A1b2" * 8,
    "project": "sk-proj-" + "A1b2_c3-" * 5,
    "service account": "sk-svcacct-" + "Zz9" * 10,
    "admin": "sk-admin-" + "Qq7" * 10,
    "azure 32 hex": "0123456789abcdef" * 2,
    "azure 84": ("AbC9" * 21),
    "ingestion token": "ingest_0a1b2c3d4e5f_" + "x-Y_z" * 8,
    "bearer header": "Authorization: Bearer custom-token.value/123",
    "api-key header": '"api-key": "anything-at-all-42"',
}


@pytest.mark.parametrize("name", list(SHAPES))
def test_every_stored_key_format_is_redacted_by_shape(name):
    value = SHAPES[name]
    secret_part = value[-12:].rstrip('"')
    text = redact(f"upstream said: {value}.")
    assert secret_part not in text and "…[redacted]" in text


def test_the_known_non_secret_parts_stay():
    assert redact("sk-proj-" + "a" * 30).startswith("sk-proj-…[redacted]")
    assert redact("ingest_0a1b2c3d4e5f_" + "y" * 30) == "ingest_0a1b2c3d4e5f_…[redacted]"
    assert redact("Authorization: Bearer " + "t" * 20) == "Authorization: Bearer …[redacted]"


@pytest.mark.parametrize(
    "text",
    [
        "request id req_" + "0123456789abcdef" * 2,  # OpenAI's x-request-id: 32 hex after "req_"
        "fingerprint " + "ab" * 32,  # 64 hex
        "client request id 3f2b8c1e-9d4a-4b6f-8e2a-1c5d7e9f0a3b",
        "You need to provide your API key in an Authorization header using Bearer auth.",
        "the task-management-service-v2 failed",
    ],
)
def test_ids_and_prose_are_not_mistaken_for_keys(text):
    assert redact(text) == text


def test_scrub_removes_a_value_of_any_shape_in_its_echoed_encodings():
    secret = 'my/Compat+key="1"&<b>'
    echoed = (
        f"plain {secret} url {quote(secret, safe='')} lower {quote(secret, safe='').lower()} "
        f"form {quote_plus(secret)} json {json.dumps(secret)} html {html.escape(secret)} "
        f"base64 {base64.b64encode(secret.encode()).decode()}"
    )
    text = scrub(echoed, [secret])
    for fragment in ("Compat", "Compat%2Bkey", "compat%2bkey", "bXkvQ29tcGF0"):
        assert fragment not in text
    assert text.startswith("plain …[redacted] url …[redacted]")
    assert scrub("short abc", ["abc"]) == "short abc"  # too short to scrub by value


def test_the_credential_of_a_request_is_found_in_its_headers():
    assert header_secrets({"authorization": "Bearer abc.def-123"}) == (
        "Bearer abc.def-123",
        "abc.def-123",
    )
    assert header_secrets({"api-key": "0123456789abcdef" * 2}) == ("0123456789abcdef" * 2,)
    assert header_secrets({}) == ()


def test_the_log_filter_redacts_the_traceback_too(caplog):
    secret = "0123456789abcdef" * 2  # an Azure key
    try:
        raise ValueError(f"upstream said {secret}")
    except ValueError:
        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    assert RedactSecretsFilter().filter(record)
    output = logging.Formatter().format(record)
    assert "upstream said …[redacted]" in output and secret not in output


# --- Error pages, DEBUG on and off --------------------------------------------------------

AZURE = "fedcba9876543210" * 2
COMPAT = "compat:" + "Zq8" * 6 + "/+="
INGEST = "ingest_0123456789ab_" + "T0ken-value_" * 3


def _boom(request):
    """A view that fails holding secrets the ways real code does."""
    secret = request.POST["secret"]  # a local named like a secret (no decorator)
    note = request.POST["note"]  # a local holding an Azure key
    payload = {"api_key": secret, "nested": {"token": INGEST, "azure": note}}  # a dict
    values = [secret, note]  # an unnamed container
    header = request.headers.get("Authorization", "")
    raise RuntimeError(f"upstream said {secret} / {header} / {len(payload)} {len(values)}")


urlpatterns = [path("boom/", _boom)]


def _assert_no_secret(text: str) -> None:
    for secret in (AZURE, COMPAT, INGEST):
        for form in {secret, html.escape(secret), quote(secret, safe=""), secret[-12:]}:
            assert form not in text and form not in html.unescape(text), form


@pytest.mark.urls(__name__)
@pytest.mark.parametrize("accept", ["text/html", "text/plain"])
def test_the_debug_error_page_shows_no_secret(settings, client, accept):
    settings.DEBUG = True
    client.raise_request_exception = False
    response = client.post(
        f"/boom/?api-key={quote(COMPAT, safe='')}&token={INGEST}",
        {"secret": COMPAT, "note": AZURE, "comment": f"see {AZURE}"},
        HTTP_AUTHORIZATION=f"Bearer {INGEST}",
        HTTP_API_KEY=AZURE,
        HTTP_ACCEPT=accept,
    )
    page = response.content.decode()
    assert response.status_code == 500
    assert (
        "RuntimeError" in page and "upstream said" in page and "payload" in page
    )  # it is the debug page
    _assert_no_secret(page)


@pytest.mark.django_db
def test_the_error_report_of_production_shows_no_secret(settings):
    settings.DEBUG = False
    request = RequestFactory().post(
        "/boom/", {"secret": COMPAT, "note": AZURE}, HTTP_AUTHORIZATION=f"Bearer {INGEST}"
    )
    request.user = AnonymousUser()
    try:
        _boom(request)
    except RuntimeError:
        reporter = get_exception_reporter_class(request)(request, *sys.exc_info())
    text = reporter.get_traceback_text()  # what an error e-mail would carry
    assert "upstream said" in text
    _assert_no_secret(text)


@pytest.mark.parametrize(
    "name",
    [
        "AUTH",
        "AUTHORIZATION",
        "HTTP_AUTHORIZATION",
        "api-key",
        "HTTP_API_KEY",
        "OPENAI_ADMIN_KEY",
        "CACHE_URL",
    ],
)
def test_credentials_are_hidden_by_name_with_debug_on(settings, name):
    settings.DEBUG = True
    reporter_filter = SecretRedactingReporterFilter()
    assert reporter_filter.is_active(None)
    assert (
        reporter_filter.cleanse_setting(name, "value-of-it") == reporter_filter.cleansed_substitute
    )


def _stream_handlers_of(name: str) -> list[logging.StreamHandler]:
    """Every stream handler a record of logger ``name`` reaches (Django's own included)."""
    found, logger = [], logging.getLogger(name)
    while logger is not None:
        found += [
            h
            for h in logger.handlers  # not pytest's own capture handlers
            if isinstance(h, logging.StreamHandler) and not type(h).__module__.startswith("_pytest")
        ]
        logger = logger.parent if logger.propagate else None
    return found


@pytest.mark.urls(__name__)
@pytest.mark.parametrize("debug", [True, False])
def test_a_request_error_is_logged_without_its_secrets(settings, client, caplog, debug):
    settings.DEBUG = debug
    client.raise_request_exception = False
    buffer = io.StringIO()
    handlers = _stream_handlers_of("django.request")
    previous = [h.setStream(buffer) for h in handlers]
    try:
        with caplog.at_level(logging.INFO):
            response = client.post(
                "/boom/", {"secret": COMPAT, "note": AZURE}, HTTP_AUTHORIZATION=f"Bearer {INGEST}"
            )
    finally:
        for h, stream in zip(handlers, previous, strict=True):
            h.setStream(stream)
    assert response.status_code == 500
    assert "upstream said" in buffer.getvalue() and "upstream said" in caplog.text
    _assert_no_secret(buffer.getvalue())
    _assert_no_secret(caplog.text)
    for record in caplog.records:
        _assert_no_secret(record.getMessage() + (record.exc_text or ""))
