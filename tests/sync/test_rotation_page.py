"""The Rotations page and its start button: who sees and who may start, the confirmation,
errors naming the field, and the queries of the list."""

from __future__ import annotations

import pytest
from django.urls import reverse

from keys.models import APIKey
from orgs.models import AuditEvent
from platformadmin.sync.models import KeyRotation
from platformadmin.sync.rotation import rotation_advance, rotation_start
from tests.factories import UserFactory, add_org_member, add_project_member

from .test_rotation import svc  # noqa: F401  (the fixture)


def _urls(organization):
    kwargs = {"org_id": organization.public_id}
    return reverse("sync:rotations", kwargs=kwargs), reverse("sync:rotation-start", kwargs=kwargs)


def test_owner_starts_a_rotation_by_hand(client, owner, svc):  # noqa: F811
    page, start = _urls(svc.linked.organization)
    client.force_login(owner)
    body = client.get(page).content.decode()
    assert str(svc.key.public_id) in body and "redeployed" in body
    reply = client.post(start, {"api_key": str(svc.key.public_id), "confirm": "yes"}, follow=True)
    text = reply.content.decode()
    rotation = KeyRotation.objects.get()
    assert rotation.step == KeyRotation.Step.PROMOTED and rotation.started_by == owner
    assert "redeploy the applications" in text and svc.key.hint in text
    assert 'data-step="promoted"' in text
    assert AuditEvent.objects.filter(action="key.rotation_start", actor=owner).exists()
    assert APIKey.objects.filter(service_account=svc.account, status="active").count() == 1


def test_start_needs_the_confirmation_and_a_key_of_this_organization(client, owner, svc):  # noqa: F811
    _, start = _urls(svc.linked.organization)
    client.force_login(owner)
    text = client.post(start, {"api_key": str(svc.key.public_id)}, follow=True).content.decode()
    assert "Confirm: tick the box" in text
    for bad in ("", "not-a-uuid", "00000000-0000-0000-0000-000000000000"):
        reply = client.post(start, {"api_key": bad, "confirm": "yes"}, follow=True)
        assert reply.status_code == 200
        assert "Key: choose one of this organization" in reply.content.decode()
    text = client.post(
        start, {"api_key": str(svc.linked.api_key.public_id), "confirm": "yes"}, follow=True
    ).content.decode()
    assert "Key: Only service-account keys" in text
    assert not KeyRotation.objects.exists()


def test_a_second_start_is_refused(client, owner, svc):  # noqa: F811
    rotation_start(api_key=svc.key)
    _, start = _urls(svc.linked.organization)
    client.force_login(owner)
    text = client.post(
        start, {"api_key": str(svc.key.public_id), "confirm": "yes"}, follow=True
    ).content.decode()
    assert "already running" in text
    assert KeyRotation.objects.count() == 1


def test_readers_see_but_cannot_start_project_members_and_outsiders_cannot_see(client, svc):  # noqa: F811
    organization = svc.linked.organization
    page, start = _urls(organization)
    reader = UserFactory(username="reader")
    add_org_member(reader, organization, "reader")
    client.force_login(reader)
    text = client.get(page).content.decode()
    assert client.get(page).status_code == 200 and "rotation-start" not in text
    assert (
        client.post(start, {"api_key": str(svc.key.public_id), "confirm": "yes"}).status_code == 403
    )
    member = UserFactory(username="member")
    add_project_member(member, svc.linked.project, "owner")
    client.force_login(member)
    assert client.get(page).status_code == 403
    assert (
        client.post(start, {"api_key": str(svc.key.public_id), "confirm": "yes"}).status_code == 403
    )
    client.force_login(UserFactory(username="outsider"))
    assert client.get(page).status_code == 404
    assert (
        client.post(start, {"api_key": str(svc.key.public_id), "confirm": "yes"}).status_code == 404
    )
    assert not KeyRotation.objects.exists()


def test_list_queries_do_not_grow_with_rotations(client, owner, svc, django_assert_num_queries):  # noqa: F811
    page, _ = _urls(svc.linked.organization)
    client.force_login(owner)
    first = rotation_start(api_key=svc.key)
    rotation_advance(rotation_id=first.pk)
    client.get(page)  # warm the session (its one write: the switcher's organization)
    with django_assert_num_queries(8) as one:
        client.get(page)
    # A failed one and a second, finished one: same queries.
    first.step = KeyRotation.Step.FAILED
    first.save(update_fields=["step"])
    new_key = APIKey.objects.get(service_account=svc.account, status="active")
    again = rotation_start(api_key=new_key)
    rotation_advance(rotation_id=again.pk)
    with django_assert_num_queries(len(one.captured_queries)):
        body = client.get(page).content.decode()
    assert body.count("data-rotation=") == 2


@pytest.mark.parametrize("method", ["put", "delete"])
def test_the_page_only_reads(client, owner, svc, method):  # noqa: F811
    page, _ = _urls(svc.linked.organization)
    client.force_login(owner)
    assert getattr(client, method)(page).status_code == 405
