"""Test connection: models.list() with the key against the OpenAI simulator (real HTTP)."""

from __future__ import annotations

import html
import secrets

import pytest
from django.urls import reverse

from keys import services
from keys.models import APIKeyEvent
from orgs.models import AuditEvent
from tests.factories import fake_secret, make_api_key
from tests.platformadmin.test_netguard import PHRASE as PRIVATE
from tests.platformadmin.test_netguard import RecordingServer

pytestmark = pytest.mark.django_db


@pytest.fixture
def sim_key(project, openai_simulator):
    return make_api_key(project, provider="compatible", base_url=openai_simulator.base_url)


def _url(api_key):
    return reverse("keys:key-test", kwargs={"key_id": api_key.public_id})


def test_a_working_key_shows_the_models_and_the_request_id(client, member, sim_key):
    client.force_login(member)  # members use the project: they may test its keys
    response = client.post(_url(sim_key), follow=True)
    page = html.unescape(response.content.decode())
    event = AuditEvent.objects.get(action="key.test")
    assert event.detail["ok"] is True and event.detail["request_id"]
    assert f"request id {event.detail['request_id']}" in page
    assert "Connection works" in page
    assert APIKeyEvent.objects.get(api_key=sim_key, action="tested").note.startswith("ok")


def test_with_htmx_only_the_result_comes_back(client, owner, sim_key):
    client.force_login(owner)
    fragment = client.post(_url(sim_key), HTTP_HX_REQUEST="true").content.decode()
    assert fragment.lstrip().startswith('<div id="test-result"') and "request id req_" in fragment
    assert "<html" not in fragment


def test_a_rejected_key_explains_the_failure(client, owner, project, openai_simulator):
    bad = make_api_key(
        project,
        provider="compatible",
        base_url=openai_simulator.base_url,
        secret=f"sk-test-fault-401-{secrets.token_hex(8)}",
    )
    client.force_login(owner)
    page = html.unescape(client.post(_url(bad), follow=True).content.decode())
    event = AuditEvent.objects.get(action="key.test")
    assert event.detail["ok"] is False
    assert "Test connection:" in page and event.detail["message"][:40] in page
    assert services.api_key_secret_for_call(bad) not in page


def test_test_connection_right_after_adding(client, owner, project, openai_simulator):
    secret = fake_secret("proj")
    client.force_login(owner)
    response = client.post(
        reverse("keys:key-create", kwargs={"project_id": project.public_id}),
        {
            "name": "sim",
            "kind": "project",
            "provider": "compatible",
            "base_url": openai_simulator.base_url,
            "permissions": "restricted",
            "secret": secret,
            "test_connection": "on",
        },
    )
    page = response.content.decode()
    assert response.status_code == 200 and secret in page
    assert "Test connection: OK" in page and "request id req_" in page
    assert AuditEvent.objects.filter(action="key.test").count() == 1


def test_a_revoked_key_is_not_called(client, owner, sim_key, openai_simulator):
    services.api_key_revoke(api_key=sim_key, actor=owner)
    openai_simulator.reset()
    client.force_login(owner)
    page = html.unescape(client.post(_url(sim_key), follow=True).content.decode())
    assert "revoked" in page
    assert openai_simulator.requests == 0


def test_readers_cannot_test(client, reader, sim_key):
    client.force_login(reader)
    assert client.post(_url(sim_key)).status_code == 403
    assert client.get(_url(sim_key)).status_code == 403
    assert not AuditEvent.objects.filter(action="key.test").exists()


# --- Hardening: where the server's request may go, and any reply is a message ------------


@pytest.fixture
def target():
    server = RecordingServer()
    yield server
    server.stop()


@pytest.fixture
def second():
    server = RecordingServer()
    yield server
    server.stop()


@pytest.mark.parametrize(
    "base_url",
    [
        "http://127.0.0.1:{port}/latest/meta-data",
        "http://localhost:{port}/v1",
        "http://[::1]:{port}/v1",
        "http://0.0.0.0:{port}/v1",
    ],
)
def test_a_key_aimed_at_the_servers_own_network_is_never_fetched(
    client, member, project, target, base_url
):
    key = make_api_key(project, provider="compatible", base_url=base_url.format(port=target.port))
    client.force_login(member)
    for _ in range(3):  # a member could repeat it at will
        page = html.unescape(client.post(_url(key), follow=True).content.decode())
        assert "Test connection:" in page and PRIVATE in page
    assert target.requests == []
    assert "internal-secret-model" not in page
    assert AuditEvent.objects.filter(action="key.test", detail__ok=False).count() == 3


@pytest.mark.parametrize(
    ("content_type", "body", "why"),
    [
        ("application/json", b'{"data": 5}', "'data' is a number"),
        ("application/json", b"[]", "the JSON is a list"),
        ("application/json", b"null", "the JSON is null"),
        ("application/json", b'{"object": "list"}', "'data' is missing"),
        ("application/json", b'{"data": [5, {"id": 3}]}', "entry 0 of 'data' has no string 'id'"),
        ("text/html", b"<html><body>Welcome to nginx</body></html>", "not JSON but 'text/html'"),
        ("application/json", b"this is not json", "not JSON"),
    ],
)
def test_any_upstream_reply_becomes_a_message(
    client, owner, project, target, settings, content_type, body, why
):
    settings.OUTBOUND_ALLOWED_ORIGINS = [target.origin]
    target.reply = (200, {"content-type": content_type}, body)
    key = make_api_key(project, provider="compatible", base_url=f"{target.origin}/v1")
    client.force_login(owner)
    response = client.post(_url(key), follow=True)
    page = html.unescape(response.content.decode())
    assert response.status_code == 200
    assert "not with a model list" in page and why in page and "Check the key's base URL" in page
    fragment = html.unescape(client.post(_url(key), HTTP_HX_REQUEST="true").content.decode())
    assert "Test connection: failed" in fragment and why in fragment
    assert AuditEvent.objects.filter(action="key.test", detail__ok=False).count() == 2


def test_a_redirect_from_an_allowed_origin_is_not_followed(
    client, owner, project, target, second, settings
):
    settings.OUTBOUND_ALLOWED_ORIGINS = [target.origin]
    target.reply = (302, {"location": f"{second.origin}/latest/meta-data"}, b"")
    key = make_api_key(project, provider="compatible", base_url=f"{target.origin}/v1")
    client.force_login(owner)
    page = html.unescape(client.post(_url(key), follow=True).content.decode())
    assert "Test connection:" in page and "302" in page
    assert len(target.requests) == 1 and second.requests == []
