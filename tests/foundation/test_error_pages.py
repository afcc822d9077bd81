"""Refused and missing pages are console pages with a way back, logged without a traceback."""

from __future__ import annotations

import logging

import pytest
from django.test import Client, RequestFactory
from django.urls import reverse
from django.views.defaults import server_error

pytestmark = pytest.mark.django_db


def test_a_403_is_a_console_page_with_navigation(client, project, reader):
    client.force_login(reader)
    response = client.get(reverse("usage:ingestion-tokens", args=[project.public_id]))
    assert response.status_code == 403
    body = response.content.decode()
    assert "do that here" in body and "can change your role" in body
    assert 'class="topbar"' in body and reverse("home") in body


def test_a_404_is_a_console_page_and_says_why(client, project, outsider):
    client.force_login(outsider)
    response = client.get(reverse("orgs:project-detail", args=[project.public_id]))
    assert response.status_code == 404
    body = response.content.decode()
    assert "Page not found" in body and "not a member" in body
    assert "URLconf" not in body  # never Django's debug list of URL patterns


def test_a_csrf_failure_says_what_to_do(project, owner):
    client = Client(enforce_csrf_checks=True)
    client.force_login(owner)
    response = client.post(reverse("orgs:project-settings", args=[project.public_id]), {})
    assert response.status_code == 403
    assert "This form has expired" in response.content.decode()


def test_the_500_page_renders_without_a_request_context():
    response = server_error(RequestFactory().get("/"))
    assert response.status_code == 500
    assert "Something went wrong on our side" in response.content.decode()


def test_a_403_is_logged_as_one_line_without_traceback(client, project, reader, caplog):
    client.force_login(reader)
    with caplog.at_level(logging.WARNING, logger="django.request"):
        client.get(reverse("usage:ingestion-tokens", args=[project.public_id]))
    records = [r for r in caplog.records if r.name == "django.request"]
    assert records, "the refusal is still logged"
    assert all(r.exc_info is None for r in records)
    handler = logging.getLogger().handlers[0]
    assert all("Traceback" not in handler.format(r) for r in records)
