"""Creating an organization in the console (a first user no longer needs the Django
admin): superusers, or everyone signed in when ORG_CREATION_OPEN_TO_ALL is on; the
creator is its owner; audited; others get 403 (not an object page, nothing to hide)."""

from __future__ import annotations

import html

import pytest
from django.urls import reverse

from orgs.models import AuditEvent, Organization, OrganizationMembership
from tests.factories import OrganizationFactory, UserFactory

pytestmark = pytest.mark.django_db

URL = "/orgs/new/"


@pytest.fixture
def admin_user(db):
    return UserFactory(username="root", is_superuser=True, is_staff=True)


def _data(**extra):
    return {
        "name": "Acme Research",
        "slug": "",
        "tier": "tier_2",
        "billing_timezone": "Europe/Paris",
        **extra,
    }


def test_the_url_is_named(db):
    assert reverse("orgs:organization-create") == URL


def test_a_superuser_creates_one_and_becomes_its_owner(client, admin_user):
    client.force_login(admin_user)
    assert client.get(URL).status_code == 200
    response = client.post(URL, _data())
    organization = Organization.objects.get(name="Acme Research")
    assert response.status_code == 302
    assert response["Location"] == reverse(
        "orgs:organization-detail", kwargs={"org_id": organization.public_id}
    )
    assert (organization.slug, organization.tier, organization.billing_timezone) == (
        "acme-research",
        "tier_2",
        "Europe/Paris",
    )
    assert OrganizationMembership.objects.get(organization=organization).user == admin_user
    assert organization.memberships.get().role == "owner"
    event = AuditEvent.objects.get(action="organization.create")
    assert event.actor == admin_user and event.organization == organization
    assert event.detail["slug"] == "acme-research" and event.detail["owner"] == "root"
    page = html.unescape(client.get(response["Location"]).content.decode())
    assert "Organization Acme Research created; you are its owner." in page


def test_the_slug_is_made_unique_and_a_taken_one_is_refused_naming_the_field(client, admin_user):
    OrganizationFactory(name="Other", slug="acme-research")
    client.force_login(admin_user)
    client.post(URL, _data())
    assert Organization.objects.get(name="Acme Research").slug == "acme-research-2"
    response = client.post(URL, _data(name="Acme Again", slug="acme-research"))
    assert response.status_code == 400
    assert "The slug 'acme-research' is taken" in " ".join(response.context["form"].errors["slug"])
    assert not Organization.objects.filter(name="Acme Again").exists()


def test_a_name_without_letters_still_gets_a_slug(client, admin_user):
    client.force_login(admin_user)
    client.post(URL, _data(name="研究所"))
    assert Organization.objects.get(name="研究所").slug == "organization"


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("name", "   ", "required"),
        ("billing_timezone", "Mars/Olympus", "choose one from the list"),
        ("tier", "tier_9", "Select a valid choice"),
        ("slug", "Not a slug!", "letters, numbers, underscores or hyphens"),
    ],
)
def test_bad_input_is_a_form_error_naming_the_field(client, admin_user, field, value, message):
    client.force_login(admin_user)
    response = client.post(URL, _data(**{field: value}))
    assert response.status_code == 400
    assert message in " ".join(response.context["form"].errors[field])
    assert not Organization.objects.exists()
    assert not AuditEvent.objects.filter(action="organization.create").exists()


def test_the_switcher_offers_it_only_to_those_who_may(client, admin_user, owner):
    client.force_login(admin_user)
    page = client.get(reverse("home")).content.decode()
    assert 'id="new-organization"' in page and f'href="{URL}"' in page
    client.force_login(owner)
    assert 'id="new-organization"' not in client.get(reverse("home")).content.decode()


def test_others_get_403_and_nothing_is_created(client, owner, reader, member, outsider):
    for user in (owner, reader, member, outsider):
        client.force_login(user)
        assert client.get(URL).status_code == 403
        assert client.post(URL, _data()).status_code == 403
    assert not Organization.objects.filter(name="Acme Research").exists()


def test_anonymous_visitors_are_sent_to_sign_in(client):
    for method in (client.get, client.post):
        response = method(URL)
        assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")


def test_when_open_to_all_any_signed_in_user_may_create_one(client, settings, db):
    settings.ORG_CREATION_OPEN_TO_ALL = True
    newcomer = UserFactory(username="newcomer")
    client.force_login(newcomer)
    assert 'id="new-organization"' in client.get(reverse("home")).content.decode()
    assert client.post(URL, _data()).status_code == 302
    organization = Organization.objects.get(name="Acme Research")
    assert organization.memberships.get(user=newcomer).role == "owner"
