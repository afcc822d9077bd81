"""Reveal (password, audited), rotate (old hint kept), revoke (row stays, unusable)."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from keys import services
from keys.models import APIKey, APIKeyEvent
from orgs.models import AuditEvent
from tests.factories import TEST_PASSWORD, fake_secret

pytestmark = pytest.mark.django_db


def _u(name, api_key):
    return reverse(f"keys:key-{name}", kwargs={"key_id": api_key.public_id})


# --- reveal --------------------------------------------------------------------------


def test_reveal_needs_the_password_and_is_audited(client, project_owner, project):
    secret = fake_secret("proj")
    from tests.factories import make_api_key

    api_key = make_api_key(project, secret=secret)
    client.force_login(project_owner)
    form = client.get(_u("reveal", api_key))
    assert form.status_code == 200 and secret not in form.content.decode()
    wrong = client.post(_u("reveal", api_key), {"password": "not my password"})
    assert wrong.status_code == 400
    assert secret not in wrong.content.decode()
    assert "Wrong password" in wrong.content.decode()
    assert not AuditEvent.objects.filter(action="key.reveal").exists()
    assert AuditEvent.objects.get(action="key.reveal_refused").actor == project_owner
    right = client.post(_u("reveal", api_key), {"password": TEST_PASSWORD})
    assert right.status_code == 200
    assert secret in right.content.decode()
    assert "no-store" in right["Cache-Control"]
    event = AuditEvent.objects.get(action="key.reveal")
    assert event.actor == project_owner and event.target_id == str(api_key.public_id)
    assert APIKeyEvent.objects.filter(api_key=api_key, action="revealed").exists()


def test_org_owners_may_reveal_readers_and_members_may_not(client, owner, reader, member, api_key):
    for user in (reader, member):
        client.force_login(user)
        assert client.get(_u("reveal", api_key)).status_code == 403
        assert client.post(_u("reveal", api_key), {"password": TEST_PASSWORD}).status_code == 403
    client.force_login(owner)
    assert client.post(_u("reveal", api_key), {"password": TEST_PASSWORD}).status_code == 200
    assert AuditEvent.objects.filter(action="key.reveal").count() == 1


def test_a_revoked_key_is_not_revealed(client, owner, api_key):
    services.api_key_revoke(api_key=api_key, actor=owner)
    client.force_login(owner)
    response = client.post(_u("reveal", api_key), {"password": TEST_PASSWORD})
    assert response.status_code == 400
    assert (
        services.api_key_secret_for_call(APIKey.objects.get(pk=api_key.pk))
        not in response.content.decode()
    )


# --- rotate ----------------------------------------------------------------------------


def test_rotate_replaces_the_value_and_keeps_the_old_hint(client, project_owner, api_key):
    old_hint = api_key.hint
    new_secret = fake_secret("proj")
    client.force_login(project_owner)
    response = client.post(_u("rotate", api_key), {"secret": new_secret})
    assert response.status_code == 302
    api_key.refresh_from_db()
    assert services.api_key_secret_for_call(api_key) == new_secret
    assert api_key.last_rotated_at is not None
    assert api_key.hint == f"sk-proj-…{new_secret[-4:]}"
    event = APIKeyEvent.objects.get(api_key=api_key, action="rotated")
    assert (event.old_hint, event.new_hint) == (old_hint, api_key.hint)
    audit = AuditEvent.objects.get(action="key.rotate")
    assert audit.detail["old_hint"] == old_hint and new_secret not in str(audit.detail)
    page = client.get(_u("detail", api_key)).content.decode()
    assert old_hint in page and new_secret not in page


def test_rotate_refuses_a_bad_value_and_changes_nothing(client, owner, api_key):
    before = api_key.secret
    client.force_login(owner)
    response = client.post(_u("rotate", api_key), {"secret": "sk-proj-short"})
    assert response.status_code == 400
    assert "project key starts with" in response.content.decode()
    assert "sk-proj-short" not in response.content.decode()
    api_key.refresh_from_db()
    assert api_key.secret == before and api_key.last_rotated_at is None
    assert not AuditEvent.objects.filter(action="key.rotate").exists()


def test_rotate_to_a_value_already_stored_is_refused(owner, api_key, project):
    from tests.factories import make_api_key

    other_secret = fake_secret("proj")
    make_api_key(project, secret=other_secret)
    with pytest.raises(ValidationError) as excinfo:
        services.api_key_rotate(api_key=api_key, secret=other_secret, actor=owner)
    assert "already stored" in str(excinfo.value)
    assert not APIKeyEvent.objects.filter(action="rotated").exists()


def test_rotate_to_the_current_value_is_a_form_error_and_keeps_the_clock(client, owner, project):
    from tests.factories import make_api_key

    secret = fake_secret("proj")
    api_key = make_api_key(project, secret=secret)
    client.force_login(owner)
    response = client.post(_u("rotate", api_key), {"secret": secret})
    assert response.status_code == 400
    assert "current value" in response.context["form"].errors["secret"][0]
    assert secret not in response.content.decode()
    api_key.refresh_from_db()
    assert api_key.last_rotated_at is None
    assert not APIKeyEvent.objects.filter(action="rotated").exists()
    assert not AuditEvent.objects.filter(action="key.rotate").exists()


def test_rotating_twice_to_the_same_new_value_is_refused_the_second_time(owner, api_key):
    new_secret = fake_secret("proj")
    services.api_key_rotate(api_key=api_key, secret=new_secret, actor=owner)
    first_rotation = APIKey.objects.get(pk=api_key.pk).last_rotated_at
    with pytest.raises(ValidationError) as excinfo:
        services.api_key_rotate(api_key=api_key, secret=new_secret, actor=owner)
    assert "current value" in excinfo.value.message_dict["secret"][0]
    assert APIKey.objects.get(pk=api_key.pk).last_rotated_at == first_rotation
    assert APIKeyEvent.objects.filter(action="rotated").count() == 1


# --- duplicates are detected within an organization -----------------------------------


def test_two_organizations_may_store_the_same_key(project):
    from tests.factories import ProjectFactory, make_api_key

    secret = fake_secret("proj")
    first = make_api_key(project, secret=secret)
    elsewhere = ProjectFactory()  # another organization
    second = make_api_key(elsewhere, secret=secret)
    assert first.fingerprint == second.fingerprint
    assert first.organization_id != second.organization_id
    assert services.api_key_secret_for_call(second) == secret


def test_the_same_key_is_still_refused_twice_in_one_organization(project):
    from tests.factories import ProjectFactory, make_api_key

    secret = fake_secret("proj")
    make_api_key(project, secret=secret)
    sibling = ProjectFactory(organization=project.organization)  # same org, other project
    with pytest.raises(ValidationError) as excinfo:
        make_api_key(sibling, secret=secret)
    assert "already stored in this organization" in excinfo.value.message_dict["secret"][0]
    assert APIKey.objects.filter(organization=project.organization).count() == 1


def test_the_database_refuses_a_duplicate_within_the_organization_only(project):
    from django.db import IntegrityError, transaction

    from tests.factories import ProjectFactory, make_api_key

    first = make_api_key(project)
    other = ProjectFactory()

    def copy_into(target_project):
        return APIKey(
            organization=target_project.organization,
            project=target_project,
            name="copy",
            hint=first.hint,
            fingerprint=first.fingerprint,
            secret=first.secret,
        )

    copy_into(other).save()  # another organization: accepted by the constraint
    with pytest.raises(IntegrityError), transaction.atomic():
        copy_into(project).save()


def test_rotating_to_a_key_another_organization_stores_is_accepted(owner, api_key):
    from tests.factories import ProjectFactory, make_api_key

    shared = fake_secret("proj")
    make_api_key(ProjectFactory(), secret=shared)
    services.api_key_rotate(api_key=api_key, secret=shared, actor=owner)
    assert services.api_key_secret_for_call(APIKey.objects.get(pk=api_key.pk)) == shared


# --- revoke -----------------------------------------------------------------------------


def test_revoke_keeps_the_row_and_marks_it_unusable(client, project_owner, api_key):
    client.force_login(project_owner)
    assert (
        client.post(_u("revoke", api_key), {"reason": "leaked"}).status_code == 400
    )  # not confirmed
    response = client.post(_u("revoke", api_key), {"confirm": "on", "reason": "leaked in a log"})
    assert response.status_code == 302
    api_key.refresh_from_db()
    assert api_key.status == APIKey.Status.REVOKED and api_key.revoked_at is not None
    assert not api_key.is_active
    assert AuditEvent.objects.get(action="key.revoke").detail["reason"] == "leaked in a log"
    # Rotation of a revoked key is refused; the page offers no lifecycle controls.
    assert client.post(_u("rotate", api_key), {"secret": fake_secret("proj")}).status_code == 400
    page = client.get(_u("detail", api_key)).content.decode()
    assert "Revoked" in page and ">Rotate<" not in page


def test_revoke_is_idempotent(owner, api_key):
    services.api_key_revoke(api_key=api_key, actor=owner)
    services.api_key_revoke(api_key=api_key, actor=owner)
    assert APIKeyEvent.objects.filter(action="revoked").count() == 1
    assert AuditEvent.objects.filter(action="key.revoke").count() == 1


def test_members_cannot_rotate_or_revoke(client, member, reader, api_key):
    for user in (member, reader):
        client.force_login(user)
        assert (
            client.post(_u("rotate", api_key), {"secret": fake_secret("proj")}).status_code == 403
        )
        assert client.post(_u("revoke", api_key), {"confirm": "on"}).status_code == 403
    api_key.refresh_from_db()
    assert api_key.is_active and api_key.last_rotated_at is None


def test_key_history_is_append_only(owner, api_key):
    services.api_key_revoke(api_key=api_key, actor=owner)
    event = APIKeyEvent.objects.get()
    event.note = "tampered"
    with pytest.raises(PermissionError):
        event.save()
    with pytest.raises(PermissionError):
        event.delete()
