"""Secrets stay out of logs and error pages."""

from __future__ import annotations

import logging

import pytest
from django.test import RequestFactory
from django.views.debug import ExceptionReporter

from keys.services import api_key_create
from platformadmin.redaction import RedactSecretsFilter, redact
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
        api_key_create(organization=project.organization, project=project, name="x",
                       secret=secret, kind="admin")
    except Exception as exc:  # the project is wrong for an admin key: a ValidationError
        reporter = ExceptionReporter(request, type(exc), exc, exc.__traceback__)
        html = reporter.get_traceback_html()
    else:
        pytest.fail("an admin key with a project must be refused")
    assert secret not in html
    assert secret[-12:] not in html
