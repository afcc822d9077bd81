"""The Rotation page of an organization (keys/views_rotation.py)."""

from __future__ import annotations

import datetime as dt
import re

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from keys.models import RotationReminder
from keys.reminders import rotation_reminders_scan
from keys.services import api_key_create_unaudited
from tests.factories import ProjectFactory, fake_secret, make_api_key

pytestmark = pytest.mark.django_db

UTC = dt.UTC
NOW = dt.datetime(2026, 6, 15, 18, 0, tzinfo=UTC)


def at(when: dt.datetime):
    return time_machine.travel(when, tick=False)


def url(organization) -> str:
    return reverse("keys:rotation", kwargs={"org_id": organization.public_id})


@pytest.fixture
def keys(organization, project):
    """Three keys of the fixture project (90-day period) due in 40 days, in 3 days and 5 days
    ago, and one of another project of the same organization."""
    other = ProjectFactory(organization=organization, name="Research", rotation_period_days=30)
    made = {}
    for name, age_days, owner_project in [
        ("later", 50, project),
        ("soon", 87, project),
        ("late", 95, project),
        ("research", 10, other),
    ]:
        with at(NOW - dt.timedelta(days=age_days)):
            made[name] = make_api_key(owner_project, name=f"{name} key")
    return made


def names_in_order(html: str) -> list[str]:
    return re.findall(r">(\w+) key</a>", html)


def test_owners_see_every_active_key_by_due_date(client, owner, organization, keys):
    organization.billing_timezone = "America/Los_Angeles"
    organization.save()
    with at(NOW):
        rotation_reminders_scan(now=NOW)
        client.force_login(owner)
        response = client.get(url(organization))
    assert response.status_code == 200
    html = response.content.decode()
    assert names_in_order(html) == ["late", "soon", "research", "later"]
    assert keys["soon"].hint in html and "Research" in html
    due = (NOW - dt.timedelta(days=87) + dt.timedelta(days=90)).astimezone(
        dt.timezone(dt.timedelta(hours=-7))
    )
    assert f"{due:%Y-%m-%d %H:%M} PDT" in html  # the billing timezone, not UTC
    assert "due in 3 days" in html and "overdue, due 5 days ago" in html
    assert "7 days before" in html  # the stage of "soon"
    sent = RotationReminder.objects.get(api_key=keys["soon"])
    assert f"{sent.created_at.astimezone(due.tzinfo):%Y-%m-%d %H:%M}" in html
    assert html.count("none this cycle") == 2  # "later" and "research": nothing sent yet
    assert 'id="rotation-overdue">1<' in html and 'id="rotation-soon">1<' in html
    assert reverse("keys:key-detail", kwargs={"key_id": keys["late"].public_id}) in html


def test_a_rotated_or_revoked_key_leaves_the_list_or_restarts(client, owner, organization, keys):
    keys["late"].status = "revoked"
    keys["late"].save()
    with at(NOW):
        client.force_login(owner)
        html = client.get(url(organization)).content.decode()
    assert "late key" not in html


def test_an_admin_key_without_expiry_is_listed_last_without_a_due_date(
    client, owner, organization, keys
):
    with at(NOW):
        api_key_create_unaudited(
            organization=organization,
            project=None,
            name="admin",
            kind="admin",
            secret=fake_secret("admin"),
        )
        client.force_login(owner)
        html = client.get(url(organization)).content.decode()
    assert names_in_order(html)[-1] == "later"  # the admin key is named "admin", listed after
    assert html.rindex("no due date") > html.index("later key")
    assert "organization (admin key)" in html


def test_readers_see_it_and_project_members_see_only_their_projects(
    client, reader, member, organization, keys
):
    with at(NOW):
        client.force_login(reader)
        assert names_in_order(client.get(url(organization)).content.decode()) == [
            "late",
            "soon",
            "research",
            "later",
        ]
        client.force_login(member)
        response = client.get(url(organization))
    html = response.content.decode()
    assert response.status_code == 200
    assert names_in_order(html) == ["late", "soon", "later"]
    assert "Research" not in html and "of the projects you belong to" in html


def test_outsiders_get_404_and_writes_405(client, owner, outsider, organization, keys):
    client.force_login(outsider)
    assert client.get(url(organization)).status_code == 404
    client.force_login(owner)
    assert client.post(url(organization)).status_code == 405
    client.logout()
    assert client.get(url(organization)).status_code == 302


def test_the_organization_page_links_to_it(client, member, organization):
    client.force_login(member)
    page = client.get(
        reverse("orgs:organization-detail", kwargs={"org_id": organization.public_id})
    )
    assert url(organization) in page.content.decode()


def test_queries_do_not_grow_with_the_number_of_keys(
    client, owner, organization, project, django_assert_num_queries
):
    def add(n: int) -> None:
        for i in range(n):
            with at(NOW - dt.timedelta(days=80 + i % 20)):
                make_api_key(project)

    client.force_login(owner)
    add(5)
    with at(NOW):
        rotation_reminders_scan(now=NOW)
        client.get(url(organization))  # warm the session
        with CaptureQueriesContext(connection) as five:
            assert client.get(url(organization)).status_code == 200
    # Session, user, organization, keys with their last reminder, the header's own reads.
    assert len(five.captured_queries) <= 10
    add(45)
    with at(NOW):
        rotation_reminders_scan(now=NOW)
        with django_assert_num_queries(len(five.captured_queries)):
            html = client.get(url(organization)).content.decode()
    assert html.count("<tr>") == 1 + 50
