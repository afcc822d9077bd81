"""The admin key page, Sync now and the sync history: who may do what, bad input, queries."""

from __future__ import annotations

import secrets

import pytest
from django.urls import reverse

from keys.models import APIKey
from keys.services import api_key_create_unaudited
from orgs.models import AuditEvent
from platformadmin.sync.models import SyncRun
from platformadmin.sync.pull import hierarchy_pull

pytestmark = pytest.mark.django_db


def _url(name, organization, **kw):
    return reverse(f"sync:{name}", kwargs={"org_id": organization.public_id, **kw})


def _store(client, organization, simulator, secret=None):
    secret = secret or f"sk-admin-{secrets.token_urlsafe(24)}"
    response = client.post(
        _url("admin-key", organization), {"secret": secret, "base_url": simulator.base_url}
    )
    return secret, response


def test_an_owner_stores_tests_and_replaces_the_admin_key(
    client, owner, organization, openai_simulator
):
    client.force_login(owner)
    secret, response = _store(client, organization, openai_simulator)
    assert response.status_code == 302
    key = APIKey.objects.get(organization=organization, kind="admin")
    assert key.hint.endswith(secret[-4:]) and secret not in key.secret
    page = client.get(_url("admin-key", organization)).content.decode()
    assert key.hint in page and secret not in page
    event = AuditEvent.objects.get(action="key.create", organization=organization)
    assert secret not in str(event.detail)

    openai_simulator.admin.org(secret).add_project("One")
    tested = client.post(_url("admin-key-test", organization), follow=True)
    assert "OpenAI accepted the admin key" in tested.content.decode()
    assert "passed" in client.get(_url("admin-key", organization)).content.decode()

    new, response = _store(client, organization, openai_simulator)
    assert response.status_code == 302
    keys = APIKey.objects.filter(organization=organization, kind="admin")
    assert keys.filter(status="active").count() == 1
    assert keys.get(status="active").hint.endswith(new[-4:])
    assert keys.filter(status="revoked").count() == 1


def test_a_failed_test_shows_the_fix_without_the_key(client, owner, organization, openai_simulator):
    client.force_login(owner)
    secret = f"sk-admin-fault-401-{secrets.token_urlsafe(20)}"
    _store(client, organization, openai_simulator, secret)
    page = client.post(_url("admin-key-test", organization), follow=True).content.decode()
    assert "401" in page and "Store a current admin key" in page
    assert secret not in page
    assert "failed" in client.get(_url("admin-key", organization)).content.decode()


@pytest.mark.parametrize(
    ("data", "field_message"),
    [
        ({"secret": "sk-proj-" + "a" * 30}, "admin key starts with"),
        ({"secret": ""}, "This field is required"),
        ({"secret": "sk-admin-" + "a" * 30, "base_url": "http://169.254.169.254/v1"}, "Base URL"),
        ({"secret": "sk-admin-" + "a" * 30, "base_url": "not a url"}, "Enter a valid URL"),
    ],
)
def test_bad_input_names_the_field_and_stores_nothing(
    client, owner, organization, data, field_message
):
    client.force_login(owner)
    response = client.post(_url("admin-key", organization), data)
    assert response.status_code == 400
    assert field_message in response.content.decode()
    assert not APIKey.objects.filter(organization=organization, kind="admin").exists()


def test_readers_see_the_hint_but_cannot_store_test_or_sync(
    client, reader, organization, openai_simulator
):
    key = api_key_create_unaudited(
        organization=organization,
        name="admin",
        secret=f"sk-admin-{secrets.token_urlsafe(24)}",
        kind="admin",
        base_url=openai_simulator.base_url,
    )
    client.force_login(reader)
    page = client.get(_url("admin-key", organization)).content.decode()
    assert key.hint in page and "Store the admin key" not in page and "Replace" not in page
    for name in ("admin-key", "admin-key-test", "hierarchy-pull"):
        assert client.post(_url(name, organization), {"secret": "x"}).status_code == 403
    assert not SyncRun.objects.exists()


def test_project_only_members_are_refused_and_outsiders_see_nothing(
    client, member, outsider, organization
):
    client.force_login(member)
    assert client.get(_url("history", organization)).status_code == 403
    client.force_login(outsider)
    assert client.get(_url("history", organization)).status_code == 404
    assert client.get(_url("admin-key", organization)).status_code == 404


def test_sync_now_runs_a_pull_and_shows_its_report(client, owner, linked):
    linked.upstream.add_key(linked.upstream_project["id"], name="from dashboard")
    client.force_login(owner)
    response = client.post(_url("hierarchy-pull", linked.organization), follow=True)
    html = response.content.decode()
    assert "Synced with OpenAI" in html and "from dashboard" in html
    assert "known, secret not stored" in html
    run = SyncRun.objects.get(organization=linked.organization, kind="hierarchy")
    assert run.triggered_by == owner


def test_the_history_page_costs_a_bounded_number_of_queries(
    client, owner, linked, django_assert_num_queries
):
    for _ in range(3):
        hierarchy_pull(organization=linked.organization, actor=owner)
    client.force_login(owner)
    client.get(_url("history", linked.organization))  # the session's first write is done
    with django_assert_num_queries(7):
        few = client.get(_url("history", linked.organization))
    for _ in range(10):
        hierarchy_pull(organization=linked.organization)
    with django_assert_num_queries(7):  # the same whatever the number of runs
        many = client.get(_url("history", linked.organization))
    assert few.status_code == many.status_code == 200
    assert many.content.decode().count("/runs/") == 13
