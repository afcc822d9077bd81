"""The usage page and the ingestion-token page: roles, one-time display, revoke, audit."""

from __future__ import annotations

import pytest
from django.urls import reverse

from orgs.models import AuditEvent
from tests.usage.conftest import response_json
from usage.models import IngestionToken
from usage.services import ingestion_token_lookup, usage_record_create

pytestmark = pytest.mark.django_db


def usage_url(project):
    return reverse("usage:project-usage", kwargs={"project_id": project.public_id})


def tokens_url(project):
    return reverse("usage:ingestion-tokens", kwargs={"project_id": project.public_id})


def test_usage_page_requires_login(client, project):
    r = client.get(usage_url(project))
    assert r.status_code == 302 and "login" in r["Location"]


@pytest.mark.parametrize("who", ["owner", "reader", "member", "project_owner"])
def test_usage_page_for_readers(client, project, api_key, who, request):
    usage_record_create(
        project=project, api_key=api_key, source="playground", response=response_json("resp_page")
    )
    usage_record_create(
        project=project,
        source="ingest",
        model="tts-1",
        response_id="r_tts",
        usage={"input_tokens": 10, "output_tokens": 0},
    )
    client.force_login(request.getfixturevalue(who))
    r = client.get(usage_url(project))
    assert r.status_code == 200
    html = r.content.decode()
    assert "resp_page" in html and api_key.hint in html
    assert "unpriced" in html
    assert "$0.02" in html and "$0.019100" not in html  # 1,000 in (200 cached) + 500 out of gpt-5.5


def test_usage_page_is_404_for_outsiders(client, project, outsider):
    client.force_login(outsider)
    assert client.get(usage_url(project)).status_code == 404


@pytest.mark.parametrize("who", ["reader", "member"])
def test_token_page_is_403_without_manage(client, project, who, request):
    client.force_login(request.getfixturevalue(who))
    assert client.get(tokens_url(project)).status_code == 403
    assert client.post(tokens_url(project), {"name": "x"}).status_code == 403
    assert not IngestionToken.objects.exists()


def test_token_page_is_404_for_outsiders(client, project, outsider):
    client.force_login(outsider)
    assert client.get(tokens_url(project)).status_code == 404


@pytest.mark.parametrize("who", ["owner", "project_owner"])
def test_create_shows_the_token_once_and_stores_only_its_hmac(client, project, who, request):
    client.force_login(request.getfixturevalue(who))
    r = client.post(tokens_url(project), {"name": "billing-service"})
    assert r.status_code == 200
    token = r.context["new_token"]
    assert token.startswith("ingest_") and token in r.content.decode()
    assert r["Cache-Control"] == "no-store"
    row = IngestionToken.objects.get()
    assert token not in (row.prefix, row.digest) and token.startswith(row.prefix)
    assert ingestion_token_lookup(token) == row
    again = client.get(tokens_url(project)).content.decode()
    assert token not in again and row.prefix in again
    event = AuditEvent.objects.get(action="usage.ingestion_token.create")
    assert token not in str(event.detail) and event.project == project


def test_create_names_the_missing_field(client, project, owner):
    client.force_login(owner)
    r = client.post(tokens_url(project), {"name": ""})
    assert r.status_code == 200 and "required" in r.content.decode()
    assert not IngestionToken.objects.exists()


def test_revoke(client, project, owner, ingest_token):
    row, token = ingest_token
    client.force_login(owner)
    url = reverse(
        "usage:ingestion-token-revoke",
        kwargs={"project_id": project.public_id, "token_id": row.public_id},
    )
    assert client.get(url).status_code == 405
    r = client.post(url)
    assert r.status_code == 302
    row.refresh_from_db()
    assert row.revoked_at is not None and row.revoked_by == owner
    assert AuditEvent.objects.filter(action="usage.ingestion_token.revoke").count() == 1
    client.post(url)  # twice: still one audit event
    assert AuditEvent.objects.filter(action="usage.ingestion_token.revoke").count() == 1


def test_revoke_is_403_for_members_and_404_for_another_projects_token(
    client, project, member, owner, organization, ingest_token
):
    from tests.factories import ProjectFactory

    row, _ = ingest_token
    client.force_login(member)
    url = reverse(
        "usage:ingestion-token-revoke",
        kwargs={"project_id": project.public_id, "token_id": row.public_id},
    )
    assert client.post(url).status_code == 403
    other = ProjectFactory(organization=organization)
    client.force_login(owner)
    wrong = reverse(
        "usage:ingestion-token-revoke",
        kwargs={"project_id": other.public_id, "token_id": row.public_id},
    )
    assert client.post(wrong).status_code == 404
    row.refresh_from_db()
    assert row.revoked_at is None
