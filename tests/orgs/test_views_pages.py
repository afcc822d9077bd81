"""Every console page renders for an organization owner, with the right controls."""

from __future__ import annotations

import datetime as dt
import re

import pytest
import time_machine
from django.urls import reverse

from platformadmin.openai.breaker import CircuitBreaker
from platformadmin.templatetags.console_format import format_money
from tests.factories import ProjectFactory, ServiceAccountFactory, add_org_member
from tests.platformadmin.helpers import sim_key
from tests.usage.conftest import response_json
from usage.services import usage_record_create

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


def test_the_owner_sees_edit_controls_and_the_reader_does_not(
    client, owner, reader, project, api_key
):
    ServiceAccountFactory(project=project, name="batch")
    url = reverse("orgs:project-detail", kwargs={"project_id": project.public_id})
    client.force_login(owner)
    page = client.get(url).content.decode()
    assert "Add a key" in page and "Change settings" in page and "New service account" in page
    client.force_login(reader)
    page = client.get(url).content.decode()
    assert api_key.hint in page and "batch" in page
    for control in (
        "Add a key",
        "Change settings",
        "New service account",
        "Set a per-model limit",
        'name="remove"',
    ):
        assert control not in page, control
    key_page = client.get(
        reverse("keys:key-detail", kwargs={"key_id": api_key.public_id})
    ).content.decode()
    for control in ("Reveal", "Rotate", "Revoke", "Test connection"):
        assert f">{control}<" not in key_page, control


def test_home_is_the_organization_switcher(client, owner, organization, other_organization):
    add_org_member(owner, other_organization, "reader")
    client.force_login(owner)
    page = client.get(reverse("home")).content.decode()
    assert reverse("orgs:organization-detail", kwargs={"org_id": organization.public_id}) in page
    assert (
        reverse("orgs:organization-detail", kwargs={"org_id": other_organization.public_id}) in page
    )
    org_page = client.get(
        reverse("orgs:organization-detail", kwargs={"org_id": organization.public_id})
    )
    assert "Switch organization" in org_page.content.decode()
    assert client.session["current_organization"] == str(organization.public_id)


# --- Issue 9: spend within reach, no dead ends, layout ---------------------------------


def _text(html: str) -> str:
    """What a person reads: tags dropped, whitespace squeezed."""
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def _spend(client, organization) -> str:
    html = client.get(
        reverse("orgs:organization-detail", kwargs={"org_id": organization.public_id})
    ).content.decode()
    return _text(re.search(r'id="spend-scope".*?Billing timezone', html, re.S).group(0))


def test_a_project_member_sees_the_spend_of_their_projects_only(
    client, organization, project, member, owner
):
    other = ProjectFactory(organization=organization, name="Secret research")
    # 1,000 input tokens of gpt-5.5 on the member's project, a hundred times more on the other one
    mine, _ = usage_record_create(
        project=project,
        source="ingest",
        response=response_json("resp_mine", inp=1000, cached=0, out=0, reasoning=0),
    )
    theirs, _ = usage_record_create(
        project=other,
        source="ingest",
        response=response_json("resp_theirs", inp=100000, cached=0, out=0, reasoning=0),
    )
    with time_machine.travel(mine.occurred_at + dt.timedelta(hours=1), tick=False):
        client.force_login(member)
        spend = _spend(client, organization)
        assert format_money(mine.cost) in spend, spend
        assert format_money(mine.cost + theirs.cost) not in spend, spend
        assert "your projects" in spend
        page = client.get(
            reverse("orgs:organization-detail", kwargs={"org_id": organization.public_id})
        )
        assert (
            "Project roles only" in page.content.decode()
            and "Secret research" not in page.content.decode()
        )
        client.force_login(owner)
        spend = _spend(client, organization)
        assert format_money(mine.cost + theirs.cost) in spend and "your projects" not in spend, (
            spend
        )


@pytest.mark.parametrize(
    ("who", "shown"),
    [("owner", True), ("project_owner", True), ("reader", False), ("member", False)],
)
def test_the_ingestion_tokens_button_only_for_those_who_may_manage_tokens(
    client, project, who, shown, request
):
    client.force_login(request.getfixturevalue(who))
    tokens = reverse("usage:ingestion-tokens", kwargs={"project_id": project.public_id})
    for url in (
        reverse("orgs:project-detail", kwargs={"project_id": project.public_id}),
        reverse("usage:project-usage", kwargs={"project_id": project.public_id}),
        reverse("orgs:project-checklist", kwargs={"project_id": project.public_id}),
    ):
        page = client.get(url).content.decode()
        assert (tokens in page) is shown, (who, url)
    assert client.get(tokens).status_code == (200 if shown else 403)


def test_the_heading_names_the_project_once_and_the_environment_apart(client, owner, project):
    client.force_login(owner)
    html = client.get(
        reverse("orgs:project-detail", kwargs={"project_id": project.public_id})
    ).content.decode()
    heading = _text(re.search(r"<h1>.*?</h1>", html, re.S).group(0)).strip()
    assert heading == "Production", heading  # not "Production Production"
    assert "Environment Production" in _text(
        re.search(r'id="project-environment".*?</p>', html, re.S).group(0)
    )


def test_usage_and_token_pages_have_the_breadcrumb(client, owner, organization, project):
    client.force_login(owner)
    for name, here in (
        ("usage:project-usage", "Usage and spend"),
        ("usage:ingestion-tokens", "Ingestion tokens"),
    ):
        html = client.get(reverse(name, kwargs={"project_id": project.public_id})).content.decode()
        assert 'class="crumbs"' in html, name
        assert (
            reverse("orgs:organization-detail", kwargs={"org_id": organization.public_id}) in html
        )
        assert reverse("orgs:project-detail", kwargs={"project_id": project.public_id}) in html
        assert f'<span aria-current="page">{here}</span>' in html


def test_every_page_links_a_favicon_that_is_served(client, owner, pages):
    """Without the link a browser asks for /favicon.ico, a 404 (the admin pages did)."""
    for url in [reverse("admin:login"), reverse("login")]:
        assert '<link rel="icon" href="' in client.get(url).content.decode(), url
    client.force_login(owner)
    for url in pages:
        icon = re.search(r'<link rel="icon" href="([^"]+)"', client.get(url).content.decode())
        assert icon, url
    response = client.get(icon.group(1))
    assert response.status_code == 200
    assert b"<svg" in b"".join(
        response.streaming_content if response.streaming else [response.content]
    )


def test_the_key_page_never_shows_more_failures_than_the_threshold(
    client, owner, api_key, settings
):
    settings.OPENAI_BREAKER_FAILURE_THRESHOLD = 5
    settings.OPENAI_BREAKER_COOLDOWN_SECONDS = 30
    breaker = CircuitBreaker.for_key(api_key)
    url = reverse("keys:key-detail", kwargs={"key_id": api_key.public_id})
    client.force_login(owner)
    with time_machine.travel("2026-07-01 12:00:00Z", tick=False) as clock:
        for _ in range(5):
            breaker.record_failure("APIConnectionError")
        assert "open 5/5 failures" in _text(client.get(url).content.decode())
        clock.shift(31)  # half-open: one probe goes out and fails, which re-opens the circuit
        breaker.before_call()
        breaker.record_failure("APIConnectionError")
        text = _text(client.get(url).content.decode())
    assert "6/5" not in text
    assert "open 5/5 failures, last probe failed" in text, text


def test_test_connection_names_the_request_id_once(client, owner, project, openai_simulator):
    key = sim_key(project, openai_simulator)
    client.force_login(owner)
    url = reverse("keys:key-test", kwargs={"key_id": key.public_id})
    fragment = client.post(url, HTTP_HX_REQUEST="true").content.decode()
    assert "Connection works" in fragment
    request_id = re.search(r"request id (req_\w+)", fragment).group(1)
    assert fragment.count(request_id) == 1, fragment
    page = client.post(url, follow=True).content.decode()
    flash = re.search(r'<ul class="messages">.*?</ul>', page, re.S).group(0)
    request_id = re.search(r"request id (req_\w+)", flash).group(1)
    assert flash.count(request_id) == 1, flash
