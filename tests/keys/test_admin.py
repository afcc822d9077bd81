"""The Django admin: the secret is write-only, bad input is a form error, never a 500."""

from __future__ import annotations

import pytest
from django.contrib import admin
from django.urls import reverse

from keys.models import APIKey
from keys.services import api_key_secret_for_call
from tests.factories import UserFactory, fake_secret, make_api_key

pytestmark = pytest.mark.django_db


@pytest.fixture
def superuser_client(client):
    user = UserFactory(username="root", is_staff=True, is_superuser=True)
    client.force_login(user)
    return client


def _add_form(project, secret, **overrides):
    data = {
        "organization": project.organization.pk,
        "project": project.pk,
        "name": "from admin",
        "kind": "project",
        "provider": "openai",
        "permissions": "restricted",
        "status": "active",
        "new_secret": secret,
        # management form of the (read-only) history inline
        "events-TOTAL_FORMS": "0",
        "events-INITIAL_FORMS": "0",
    }
    data.update(overrides)
    return data


def test_it_adds_a_key_and_never_shows_it(superuser_client, project):
    secret = fake_secret()
    response = superuser_client.post(reverse("admin:keys_apikey_add"), _add_form(project, secret))
    assert response.status_code == 302, response.content.decode()[:2000]
    api_key = APIKey.objects.get(name="from admin")
    assert api_key_secret_for_call(api_key) == secret
    for url in (
        reverse("admin:keys_apikey_change", args=[api_key.pk]),
        reverse("admin:keys_apikey_changelist"),
        reverse("admin:orgs_project_change", args=[project.pk]),
    ):
        page = superuser_client.get(url)
        assert page.status_code == 200
        body = page.content.decode()
        assert secret not in body
        assert api_key.secret not in body  # not even the ciphertext
    assert (
        api_key.hint
        in superuser_client.get(
            reverse("admin:keys_apikey_change", args=[api_key.pk])
        ).content.decode()
    )


def test_a_malformed_key_is_a_form_error_on_the_secret(superuser_client, project):
    response = superuser_client.post(
        reverse("admin:keys_apikey_add"), _add_form(project, "sk-svcacct-not-a-project-key-xx")
    )
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert "new_secret" in errors
    assert "sk-proj-" in errors["new_secret"][0]
    assert "sk-svcacct-not-a-project-key-xx" not in response.content.decode()
    assert not APIKey.objects.exists()


def test_a_duplicate_is_a_form_error(superuser_client, project):
    secret = fake_secret()
    make_api_key(project, secret=secret)
    response = superuser_client.post(
        reverse("admin:keys_apikey_add"), _add_form(project, secret, name="again")
    )
    assert response.status_code == 200
    assert "already stored" in response.context["adminform"].form.errors["new_secret"][0]
    assert secret not in response.content.decode()
    assert APIKey.objects.count() == 1


def test_an_admin_key_with_a_project_is_a_form_error(superuser_client, project):
    response = superuser_client.post(
        reverse("admin:keys_apikey_add"),
        _add_form(project, fake_secret("admin"), kind="admin"),
    )
    assert response.status_code == 200
    assert "project" in response.context["adminform"].form.errors
    assert not APIKey.objects.exists()


def test_a_new_key_needs_its_secret(superuser_client, project):
    response = superuser_client.post(reverse("admin:keys_apikey_add"), _add_form(project, ""))
    assert response.status_code == 200
    assert "new_secret" in response.context["adminform"].form.errors


def test_changing_without_a_secret_keeps_it_and_a_new_one_rotates(superuser_client, project):
    secret = fake_secret()
    api_key = make_api_key(project, secret=secret)
    url = reverse("admin:keys_apikey_change", args=[api_key.pk])
    response = superuser_client.post(url, _add_form(project, "", name="renamed"))
    assert response.status_code == 302
    api_key.refresh_from_db()
    assert api_key.name == "renamed"
    assert api_key_secret_for_call(api_key) == secret
    assert api_key.last_rotated_at is None

    replacement = fake_secret()
    response = superuser_client.post(url, _add_form(project, replacement, name="renamed"))
    assert response.status_code == 302
    api_key.refresh_from_db()
    assert api_key_secret_for_call(api_key) == replacement
    assert api_key.last_rotated_at is not None


def test_every_registered_model_has_working_admin_pages(superuser_client, api_key):
    for model in admin.site._registry:
        info = (model._meta.app_label, model._meta.model_name)
        changelist = superuser_client.get(reverse(f"admin:{info[0]}_{info[1]}_changelist"))
        assert changelist.status_code == 200, info
        obj = model._default_manager.first()
        if obj is not None:
            change = superuser_client.get(
                reverse(f"admin:{info[0]}_{info[1]}_change", args=[obj.pk])
            )
            assert change.status_code == 200, info


def test_key_history_and_two_factor_devices_show_no_secret(superuser_client, project, owner):
    from keys.services import api_key_rotate
    from orgs.otp import totp_device_start

    first, second = fake_secret(), fake_secret()
    api_key = make_api_key(project, secret=first)
    api_key_rotate(api_key=api_key, secret=second, actor=owner)
    device, seed_b32 = totp_device_start(user=owner)
    pages = [
        reverse("admin:keys_apikey_change", args=[api_key.pk]),
        reverse("admin:keys_apikeyevent_changelist"),
        reverse("admin:orgs_totpdevice_changelist"),
        reverse("admin:orgs_totpdevice_change", args=[device.pk]),
    ]
    for url in pages:
        response = superuser_client.get(url)
        assert response.status_code == 200, url
        body = response.content.decode()
        for secret in (first, second, seed_b32, device.seed, api_key.secret):
            assert secret not in body, url
    assert api_key.hint in superuser_client.get(pages[1]).content.decode()


# --- lifecycle fields are read-only; secrets go through the audited services ---------


def _change_form(api_key, **overrides):
    data = {
        "project": api_key.project.pk,
        "name": api_key.name,
        "kind": api_key.kind,
        "provider": api_key.provider,
        "permissions": api_key.permissions,
        "new_secret": "",
        "events-TOTAL_FORMS": "0",
        "events-INITIAL_FORMS": "0",
    }
    data.update(overrides)
    return data


def test_a_revoked_key_cannot_be_set_back_to_active(superuser_client, api_key, owner):
    from keys.services import api_key_revoke

    api_key_revoke(api_key=api_key, actor=owner, reason="leaked")
    url = reverse("admin:keys_apikey_change", args=[api_key.pk])
    response = superuser_client.post(
        url,
        _change_form(
            api_key,
            status="active",
            revoked_at="",
            last_rotated_at="",
            fingerprint="x",
            hint="sk-…none",
        ),
    )
    assert response.status_code == 302
    api_key.refresh_from_db()
    assert api_key.status == APIKey.Status.REVOKED and api_key.revoked_at is not None
    assert api_key.hint != "sk-…none" and api_key.fingerprint != "x"
    form = superuser_client.get(url).context["adminform"].form
    for field in (
        "status",
        "revoked_at",
        "last_rotated_at",
        "fingerprint",
        "hint",
        "created_at",
        "last_used_at",
        "expires_at",
        "organization",
    ):
        assert field not in form.fields, field


def test_a_revoked_key_cannot_get_a_new_secret_in_the_admin(superuser_client, api_key, owner):
    from keys.services import api_key_revoke

    api_key_revoke(api_key=api_key, actor=owner)
    before = APIKey.objects.get(pk=api_key.pk).secret
    response = superuser_client.post(
        reverse("admin:keys_apikey_change", args=[api_key.pk]),
        _change_form(api_key, new_secret=fake_secret()),
    )
    assert response.status_code == 200
    assert "revoked" in response.context["adminform"].form.errors["new_secret"][0]
    assert APIKey.objects.get(pk=api_key.pk).secret == before


def test_a_secret_replaced_in_the_admin_is_an_audited_rotation(superuser_client, api_key):
    from keys.models import APIKeyEvent
    from orgs.models import AuditEvent

    old_hint = api_key.hint
    replacement = fake_secret()
    response = superuser_client.post(
        reverse("admin:keys_apikey_change", args=[api_key.pk]),
        _change_form(api_key, new_secret=replacement),
    )
    assert response.status_code == 302
    api_key.refresh_from_db()
    assert api_key_secret_for_call(api_key) == replacement
    event = APIKeyEvent.objects.get(api_key=api_key, action="rotated")
    assert event.actor_label == "root" and event.old_hint == old_hint
    audit = AuditEvent.objects.get(action="key.rotate")
    assert audit.actor.username == "root" and audit.detail["old_hint"] == old_hint
    assert replacement not in str(audit.detail)


def test_the_admin_refuses_the_current_value_as_a_rotation(superuser_client, project):
    secret = fake_secret()
    api_key = make_api_key(project, secret=secret)
    response = superuser_client.post(
        reverse("admin:keys_apikey_change", args=[api_key.pk]),
        _change_form(api_key, new_secret=secret),
    )
    assert response.status_code == 200
    assert "current value" in response.context["adminform"].form.errors["new_secret"][0]
    api_key.refresh_from_db()
    assert api_key.last_rotated_at is None


def test_a_key_added_in_the_admin_is_audited_with_the_admin_as_actor(superuser_client, project):
    from keys.models import APIKeyEvent
    from orgs.models import AuditEvent

    response = superuser_client.post(
        reverse("admin:keys_apikey_add"), _add_form(project, fake_secret(), status="revoked")
    )
    assert response.status_code == 302
    api_key = APIKey.objects.get(name="from admin")
    assert api_key.status == APIKey.Status.ACTIVE  # status is not set from the form
    assert api_key.created_by.username == "root"
    assert APIKeyEvent.objects.get(api_key=api_key, action="created").actor_label == "root"
    assert AuditEvent.objects.get(action="key.create").actor.username == "root"


def test_other_admin_edits_are_audited_by_field_name(superuser_client, api_key):
    from orgs.models import AuditEvent

    response = superuser_client.post(
        reverse("admin:keys_apikey_change", args=[api_key.pk]),
        _change_form(api_key, name="renamed", permissions="read_only"),
    )
    assert response.status_code == 302
    audit = AuditEvent.objects.get(action="key.admin_change")
    assert audit.detail["fields"] == ["name", "permissions"] and audit.actor.username == "root"


def test_after_the_admin_form_the_playground_still_refuses_a_revoked_key(
    superuser_client, project, owner, openai_simulator
):
    from keys.services import api_key_revoke
    from platformadmin.openai.services import GenerateParams, generate
    from tests.platformadmin.helpers import sim_key

    key = sim_key(project, openai_simulator)
    api_key_revoke(api_key=key, actor=owner)
    response = superuser_client.post(
        reverse("admin:keys_apikey_change", args=[key.pk]),
        _change_form(
            APIKey.objects.get(pk=key.pk),
            status="active",
            base_url=key.base_url,
            organization=project.organization.pk,
        ),
    )
    assert response.status_code == 302
    key = APIKey.objects.get(pk=key.pk)
    outcome = generate(
        api_key=key, project=project, params=GenerateParams(model="gpt-5.4-mini", input="hi")
    )
    assert outcome.status == "refused" and "revoked" in outcome.message
    assert openai_simulator.requests == 0
