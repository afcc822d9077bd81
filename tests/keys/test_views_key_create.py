"""Adding a key from the console: format, duplicates, shown once, audited."""

from __future__ import annotations

import html

import pytest
from django.urls import reverse

from keys.models import APIKey, APIKeyEvent
from orgs.models import AuditEvent
from tests.factories import ServiceAccountFactory, fake_secret, make_api_key
from tests.platformadmin.test_netguard import PHRASE as PRIVATE
from tests.platformadmin.test_netguard import RecordingServer

pytestmark = pytest.mark.django_db


def _url(project):
    return reverse("keys:key-create", kwargs={"project_id": project.public_id})


def _data(secret, **extra):
    data = {
        "name": "checkout",
        "kind": "project",
        "provider": "openai",
        "permissions": "restricted",
        "secret": secret,
    }
    data.update(extra)
    return data


def test_it_stores_the_key_encrypted_and_shows_it_once(client, project_owner, project):
    secret = fake_secret("proj")
    client.force_login(project_owner)
    response = client.post(_url(project), _data(secret))
    assert response.status_code == 200
    assert secret in response.content.decode()
    assert "no-store" in response["Cache-Control"]
    api_key = APIKey.objects.get(project=project)
    assert secret not in api_key.secret and api_key.hint == f"sk-proj-…{secret[-4:]}"
    assert api_key.created_by == project_owner
    assert APIKeyEvent.objects.filter(api_key=api_key, action="created").count() == 1
    event = AuditEvent.objects.get(action="key.create")
    assert event.actor == project_owner and event.project == project
    assert event.ip_address == "127.0.0.1"
    assert secret not in str(event.detail)
    # The key page afterwards shows only the hint.
    page = client.get(
        reverse("keys:key-detail", kwargs={"key_id": api_key.public_id})
    ).content.decode()
    assert secret not in page and api_key.hint in page


def test_a_wrong_format_is_refused_naming_the_field(client, owner, project):
    secret = fake_secret("svcacct")
    client.force_login(owner)
    response = client.post(_url(project), _data(secret))
    assert response.status_code == 400
    page = response.content.decode()
    assert "project key starts with" in page
    assert secret not in page
    assert not APIKey.objects.exists()


def test_the_secret_is_never_rendered_back_on_an_error(client, owner, project):
    secret = fake_secret("proj")
    client.force_login(owner)
    response = client.post(_url(project), _data(secret, name=""))
    assert response.status_code == 400
    assert secret not in response.content.decode()


def test_a_duplicate_is_refused_by_fingerprint(client, owner, project, organization):
    """Within the organization (detection is scoped to it: keys/services.py)."""
    from tests.factories import ProjectFactory

    secret = fake_secret("proj")
    make_api_key(ProjectFactory(organization=organization), secret=secret)
    client.force_login(owner)
    response = client.post(_url(project), _data(secret))
    assert response.status_code == 400
    assert "already stored" in response.content.decode()
    assert not APIKey.objects.filter(project=project).exists()


def test_service_account_keys_need_one_of_this_projects_accounts(
    client, owner, project, other_organization
):
    from tests.factories import ProjectFactory

    foreign = ServiceAccountFactory(project=ProjectFactory(organization=other_organization))
    client.force_login(owner)
    response = client.post(
        _url(project),
        _data(
            fake_secret("svcacct"), kind="service_account", service_account=str(foreign.public_id)
        ),
    )
    assert response.status_code == 400
    assert "Select a valid choice" in response.content.decode()
    mine = ServiceAccountFactory(project=project)
    response = client.post(
        _url(project),
        _data(fake_secret("svcacct"), kind="service_account", service_account=str(mine.public_id)),
    )
    assert response.status_code == 200
    assert APIKey.objects.get(project=project).service_account == mine


def test_compatible_keys_need_a_base_url(client, owner, project):
    client.force_login(owner)
    response = client.post(
        _url(project), _data("local-key-1234567890abcdef", provider="compatible")
    )
    assert response.status_code == 400
    assert "base URL" in response.content.decode()
    assert "base_url" in response.context["form"].errors


@pytest.mark.parametrize(
    "secret",
    [
        "hello-not-a-key",
        "short-token-19chars",
        "x" * 513,
        "has a space in it 1234567",
        "tab\tinside-1234567890abc",
    ],
)
def test_a_compatible_key_must_look_like_a_token(client, owner, project, target, settings, secret):
    """Anything used to be accepted (`hello-not-a-key` was stored): printable, no
    whitespace, 20 to 512 characters, the message naming the field and the fix."""
    settings.OUTBOUND_ALLOWED_ORIGINS = [target.origin]
    client.force_login(owner)
    response = client.post(
        _url(project), _data(secret, provider="compatible", base_url=f"{target.origin}/v1")
    )
    assert response.status_code == 400
    errors = " ".join(response.context["form"].errors["secret"])
    assert "20 to 512 printable characters with no spaces" in errors
    assert not APIKey.objects.exists()


def test_a_compatible_token_of_twenty_printable_characters_is_accepted(
    client, owner, project, target, settings
):
    settings.OUTBOUND_ALLOWED_ORIGINS = [target.origin]
    client.force_login(owner)
    response = client.post(
        _url(project),
        _data("tok_/+=~!abcdefghijkl", provider="compatible", base_url=f"{target.origin}/v1"),
    )
    assert response.status_code == 200
    assert APIKey.objects.get(project=project).provider == "compatible"


@pytest.mark.parametrize(
    ("provider", "field", "value", "applies_to"),
    [
        ("openai", "base_url", "https://llm.example.com/v1", "OpenAI-compatible"),
        ("openai", "azure_endpoint", "https://res.openai.azure.com", "Azure OpenAI"),
        ("openai", "azure_api_version", "2024-10-21", "Azure OpenAI"),
        ("azure", "base_url", "https://llm.example.com/v1", "OpenAI-compatible"),
        ("compatible", "azure_api_version", "2024-10-21", "Azure OpenAI"),
    ],
)
def test_a_field_that_does_not_apply_is_refused_naming_it(
    client, owner, project, provider, field, value, applies_to
):
    """An OpenAI key with a base URL used to be stored with it (and an Azure version on
    a compatible key): the field is refused with what to do."""
    secret = {
        "openai": fake_secret("proj"),
        "azure": "0123456789abcdef0123456789abcdef",
        "compatible": "compatible-token-0123456789",
    }[provider]
    extra = {
        "openai": {},
        "azure": {
            "azure_endpoint": "https://res.openai.azure.com",
            "azure_api_version": "2024-10-21",
        },
        "compatible": {"base_url": "https://llm.example.com/v1"},
    }[provider]
    client.force_login(owner)
    response = client.post(
        _url(project), _data(secret, provider=provider, **{**extra, field: value})
    )
    assert response.status_code == 400
    message = " ".join(response.context["form"].errors[field])
    assert f"applies only to {applies_to} keys" in message and "clear it" in message
    assert not APIKey.objects.exists()
    assert secret not in response.content.decode()


def test_azure_keys_need_endpoint_and_version_named_in_the_form(client, owner, project):
    client.force_login(owner)
    response = client.post(
        _url(project), _data("0123456789abcdef0123456789abcdef", provider="azure")
    )
    assert response.status_code == 400
    errors = response.context["form"].errors
    assert "Azure OpenAI keys need the Azure endpoint" in " ".join(errors["azure_endpoint"])
    assert "2024-10-21" in " ".join(errors["azure_api_version"])


def test_the_form_marks_which_fields_apply_to_which_choice(client, owner, project):
    """Groups carry the select and value they apply to, for static/key_form.js; without
    JS every field shows, its hint saying when it applies."""
    client.force_login(owner)
    page = client.get(_url(project)).content.decode()
    assert "key_form.js" in page
    for field, select, value in [
        ("service_account", "kind", "service_account"),
        ("base_url", "provider", "compatible"),
        ("azure_endpoint", "provider", "azure"),
        ("azure_api_version", "provider", "azure"),
    ]:
        marker = f'data-when-field="{select}" data-when-value="{value}">'
        start = page.index(f'id="id_{field}"')
        assert page.rindex(marker, 0, start) > page.rindex('class="field-row"', 0, start) - 60, (
            field
        )
    assert page.count("Only for") == 4
    assert (
        "data-when-field" not in page[page.index('id="id_name"') - 300 : page.index('id="id_name"')]
    )


def test_readers_and_members_cannot_add_keys(client, reader, member, project):
    for user in (reader, member):
        client.force_login(user)
        assert client.get(_url(project)).status_code == 403
        assert client.post(_url(project), _data(fake_secret("proj"))).status_code == 403
    assert not APIKey.objects.exists()


def test_outsiders_get_404(client, outsider, project):
    client.force_login(outsider)
    assert client.post(_url(project), _data(fake_secret("proj"))).status_code == 404


# --- Hardening: the base URL / Azure endpoint the server will call ------------------------


@pytest.fixture
def target():
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
        "http://169.254.169.254/latest/meta-data",
        "http://10.0.0.8/v1",
        "http://[fd00:ec2::254]/latest/meta-data",
        "http://100.100.100.200/latest/meta-data",
        "http://[::ffff:127.0.0.1]:{port}/v1",
    ],
)
def test_a_private_base_url_is_refused_naming_the_field_and_the_fix(
    client, owner, project, target, base_url
):
    client.force_login(owner)
    response = client.post(
        _url(project),
        _data(
            fake_secret("proj"),
            provider="compatible",
            base_url=base_url.format(port=target.port),
            test_connection="on",
        ),
    )
    assert response.status_code == 400
    form = response.context["form"]
    assert PRIVATE in " ".join(form.errors["base_url"])
    assert PRIVATE in html.unescape(response.content.decode())
    assert not APIKey.objects.exists()
    assert target.requests == []


def test_a_private_azure_endpoint_is_refused(client, owner, project, target):
    client.force_login(owner)
    response = client.post(
        _url(project),
        _data(
            "0123456789abcdef0123456789abcdef",
            provider="azure",
            azure_endpoint=f"http://127.0.0.1:{target.port}",
            azure_api_version="2024-10-21",
        ),
    )
    assert response.status_code == 400
    assert PRIVATE in " ".join(response.context["form"].errors["azure_endpoint"])
    assert not APIKey.objects.exists()


def test_credentials_in_the_base_url_are_refused(client, owner, project, target, settings):
    settings.OUTBOUND_ALLOWED_ORIGINS = [target.origin]
    client.force_login(owner)
    response = client.post(
        _url(project),
        _data(
            fake_secret("proj"),
            provider="compatible",
            base_url=f"http://127.0.0.1:{target.port}@llm.example.com/v1",
        ),
    )
    assert response.status_code == 400
    assert "user or password" in " ".join(response.context["form"].errors["base_url"])
    assert not APIKey.objects.exists()


def test_an_allow_listed_origin_is_accepted(client, owner, project, target, settings):
    settings.OUTBOUND_ALLOWED_ORIGINS = [target.origin]
    client.force_login(owner)
    response = client.post(
        _url(project),
        _data(fake_secret("proj"), provider="compatible", base_url=f"{target.origin}/v1"),
    )
    assert response.status_code == 200
    assert APIKey.objects.get(project=project).base_url == f"{target.origin}/v1"


@pytest.mark.parametrize(
    "body", [b'{"data": 5}', b"[]", b"<html>login</html>", b"\xff\xfe not json"]
)
def test_an_odd_reply_to_the_test_still_shows_the_key_once(
    client, owner, project, target, settings, body
):
    """The key is committed before the test runs: whatever the upstream says, the one-time
    display must come, with the test's outcome beside it."""
    settings.OUTBOUND_ALLOWED_ORIGINS = [target.origin]
    target.reply = (200, {"content-type": "application/json"}, body)
    secret = fake_secret("proj")
    client.force_login(owner)
    response = client.post(
        _url(project),
        _data(secret, provider="compatible", base_url=f"{target.origin}/v1", test_connection="on"),
    )
    page = html.unescape(response.content.decode())
    assert response.status_code == 200
    assert secret in page and "no-store" in response["Cache-Control"]
    assert "Test connection: failed" in page and "not with a model list" in page
    assert APIKey.objects.filter(project=project).count() == 1
    assert len(target.requests) == 1
