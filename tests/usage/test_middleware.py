"""The API's short path past the console's middleware (usage/middleware.py)."""

from __future__ import annotations

import asyncio
import json

import pytest
from django.db import connection
from django.http import HttpResponse
from django.test import AsyncClient, Client
from django.utils import timezone

from tests.usage.conftest import response_json
from usage.middleware import api_view, pool_shutdown
from usage.models import UsageRecord
from usage.services import ingestion_token_create, ingestion_token_revoke

pytestmark = pytest.mark.django_db
URL = "/api/v1/usage"


def body(rid):
    return json.dumps(response_json(rid, created_at=timezone.now().timestamp()))


def test_a_token_revoked_a_moment_ago_is_refused_at_once(client, ingest_token, owner):
    row, token = ingest_token
    auth = {"HTTP_AUTHORIZATION": f"Bearer {token}"}
    assert (
        client.post(URL, body("resp_1"), content_type="application/json", **auth).status_code == 200
    )
    ingestion_token_revoke(token=row, actor=owner)
    r = client.post(URL, body("resp_2"), content_type="application/json", **auth)
    assert r.status_code == 403 and r.json()["error"]["code"] == "token_revoked"
    assert list(UsageRecord.objects.values_list("response_id", flat=True)) == ["resp_1"]


def test_a_logged_in_session_does_not_authenticate_the_api(client, owner, ingest_token):
    client.force_login(owner)  # a session cookie of the project's owner, no bearer token
    r = client.post(URL, body("resp_1"), content_type="application/json")
    assert r.status_code == 401 and r.json()["error"]["code"] == "missing_token"
    assert not UsageRecord.objects.exists()


def test_a_cross_site_form_post_with_a_session_is_refused(owner, ingest_token):
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(owner)
    r = browser.post(URL, {"id": "resp_1", "model": "gpt-5.5"}, HTTP_ORIGIN="https://evil.example")
    assert r.status_code == 401
    assert not UsageRecord.objects.exists()


def test_the_api_needs_no_csrf_token_with_a_bearer_token(ingest_token):
    _, token = ingest_token
    r = Client(enforce_csrf_checks=True).post(
        URL, body("resp_1"), content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {token}"
    )
    assert r.status_code == 200, r.content


def test_security_headers_still_apply_and_no_cookie_is_set(client, ingest_token):
    _, token = ingest_token
    r = client.post(
        URL, body("resp_1"), content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {token}"
    )
    assert r.status_code == 200
    assert r["X-Content-Type-Options"] == "nosniff"  # SecurityMiddleware runs before the short path
    assert not r.cookies


def test_only_marked_views_take_the_short_path(client, ingest_token):
    _, token = ingest_token
    doc = client.get("/api/v1/openapi.json")  # not marked: the whole stack
    assert doc.status_code == 200 and doc["X-Frame-Options"] == "DENY"
    r = client.post(
        URL, body("resp_1"), content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {token}"
    )
    assert r.status_code == 200 and "X-Frame-Options" not in r  # the short path


def test_only_csrf_exempt_views_can_take_the_short_path():
    def view(request):
        return HttpResponse()

    with pytest.raises(TypeError):
        api_view(view)


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(
    connection.vendor == "sqlite",
    reason="the ASGI path runs the view on another thread, which in-memory SQLite "
    "does not share; run with DATABASE_URL=postgres://...",
)
def test_under_asgi_requests_reuse_long_lived_database_connections(project, owner, request):
    request.addfinalizer(pool_shutdown)  # the pool threads' connections, before the test DB goes
    _, token = ingestion_token_create(project=project, name="asgi")
    client = AsyncClient()
    auth = {"Authorization": f"Bearer {token}"}
    started = None
    if connection.vendor == "postgresql":
        # Count only the connections opened from here on: worker processes and pools of
        # earlier tests in the same run may still be connected to the test database.
        with connection.cursor() as cursor:
            cursor.execute("SELECT clock_timestamp()")
            (started,) = cursor.fetchone()

    async def send(n):
        return [
            await client.post(URL, body(f"resp_{i}"), content_type="application/json", headers=auth)
            for i in range(n)
        ]

    responses = asyncio.run(send(12))
    assert [r.status_code for r in responses] == [200] * 12, responses[0].content
    assert UsageRecord.objects.count() == 12
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE datname = current_database() AND backend_start >= %s",
                [started],
            )
            (backends,) = cursor.fetchone()
        assert backends <= 4  # at most USAGE_API_THREADS new ones for 12 requests
