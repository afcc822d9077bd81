"""Every console page renders for an organization owner, with the right controls."""

from __future__ import annotations

import pytest
from django.urls import reverse

from tests.factories import ServiceAccountFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def pages(organization, project, api_key):
    org, pid, kid = organization.public_id, project.public_id, api_key.public_id
    return [
        reverse("home"),
        reverse("orgs:organization-detail", kwargs={"org_id": org}),
        reverse("orgs:organization-edit", kwargs={"org_id": org}),
        reverse("orgs:project-create", kwargs={"org_id": org}),
        reverse("orgs:audit-log", kwargs={"org_id": org}),
        reverse("orgs:project-detail", kwargs={"project_id": pid}),
        reverse("orgs:project-settings", kwargs={"project_id": pid}),
        reverse("orgs:project-checklist", kwargs={"project_id": pid}),
        reverse("keys:key-create", kwargs={"project_id": pid}),
        reverse("keys:key-detail", kwargs={"key_id": kid}),
        reverse("keys:key-reveal", kwargs={"key_id": kid}),
        reverse("keys:key-rotate", kwargs={"key_id": kid}),
        reverse("keys:key-revoke", kwargs={"key_id": kid}),
    ]


def test_every_page_renders_for_the_owner(client, owner, pages):
    client.force_login(owner)
    for url in pages:
        response = client.get(url)
        assert response.status_code == 200, url
        assert b"Platform Console" in response.content


def test_the_owner_sees_edit_controls_and_the_reader_does_not(client, owner, reader, project, api_key):
    ServiceAccountFactory(project=project, name="batch")
    url = reverse("orgs:project-detail", kwargs={"project_id": project.public_id})
    client.force_login(owner)
    page = client.get(url).content.decode()
    assert "Add a key" in page and "Change settings" in page and "New service account" in page
    client.force_login(reader)
    page = client.get(url).content.decode()
    assert api_key.hint in page and "batch" in page
    for control in ("Add a key", "Change settings", "New service account", "Set a per-model limit",
                    'name="remove"'):
        assert control not in page, control
    key_page = client.get(reverse("keys:key-detail", kwargs={"key_id": api_key.public_id})).content.decode()
    for control in ("Reveal", "Rotate", "Revoke", "Test connection"):
        assert f">{control}<" not in key_page, control


def test_home_is_the_organization_switcher(client, owner, organization, other_organization):
    from tests.factories import add_org_member

    add_org_member(owner, other_organization, "reader")
    client.force_login(owner)
    page = client.get(reverse("home")).content.decode()
    assert reverse("orgs:organization-detail", kwargs={"org_id": organization.public_id}) in page
    assert reverse("orgs:organization-detail", kwargs={"org_id": other_organization.public_id}) in page
    org_page = client.get(reverse("orgs:organization-detail", kwargs={"org_id": organization.public_id}))
    assert "Switch organization" in org_page.content.decode()
    assert client.session["current_organization"] == str(organization.public_id)
