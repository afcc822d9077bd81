"""Forms that fit the choice, in Chromium: the add-key form shows only the fields of the
chosen kind and provider (static/key_form.js), the settings and organization forms offer
choices instead of free text, and a superuser creates an organization from the switcher.
No console error or CSP violation on the way; screenshots in test-artifacts/."""

from __future__ import annotations

import pytest

from orgs.models import Organization
from tests.conftest import ensure_catalog
from tests.factories import ServiceAccountFactory, UserFactory, add_org_member

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def _catalog(transactional_db):
    ensure_catalog()


def _visible(page, field: str) -> bool:
    return page.locator(f"#id_{field}").is_visible()


def test_the_forms_offer_the_fields_and_choices_that_apply(
    page, login, live_server, screenshot, organization, project
):
    errors: list[str] = []
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    admin = UserFactory(username="root", is_superuser=True, is_staff=True)
    add_org_member(admin, organization, "owner")
    ServiceAccountFactory(project=project, name="batch")
    login(admin)

    # The switcher offers a new organization; the form creates it and opens its page.
    page.goto(f"{live_server.url}/")
    screenshot("forms-01-home-new-organization")
    page.click("#new-organization")
    page.fill("#id_name", "Acme Research")
    page.select_option("#id_billing_timezone", "Europe/Paris")
    screenshot("forms-02-organization-create")
    page.click("button:has-text('Create organization')")
    page.wait_for_load_state("networkidle")
    created = Organization.objects.get(name="Acme Research")
    assert page.url.endswith(f"/orgs/{created.public_id}/")
    assert created.slug == "acme-research" and created.memberships.get().user == admin

    # Add a key: only the fields of the chosen kind and provider show.
    page.goto(f"{live_server.url}/keys/projects/{project.public_id}/new/")
    assert not any(
        _visible(page, f)
        for f in ("service_account", "base_url", "azure_endpoint", "azure_api_version")
    )
    screenshot("forms-03-key-create-openai")
    page.select_option("#id_provider", "azure")
    assert _visible(page, "azure_endpoint") and _visible(page, "azure_api_version")
    assert not _visible(page, "base_url")
    page.select_option("#id_provider", "compatible")
    page.select_option("#id_kind", "service_account")
    assert _visible(page, "base_url") and _visible(page, "service_account")
    assert not _visible(page, "azure_endpoint")
    screenshot("forms-04-key-create-compatible-service-account")
    # A value typed in a field that then stops applying is not sent (disabled).
    page.select_option("#id_provider", "azure")
    page.fill("#id_azure_api_version", "2024-10-21")
    page.select_option("#id_provider", "openai")
    assert page.locator("#id_azure_api_version").is_disabled()

    # Project settings: allowed models are checkboxes by category.
    page.goto(f"{live_server.url}/orgs/projects/{project.public_id}/settings/")
    page.check("input[name=allowed_models][value='gpt-4.1-mini']")
    screenshot("forms-05-project-settings")
    page.click("button:has-text('Save settings')")
    page.wait_for_load_state("networkidle")
    project.refresh_from_db()
    assert project.allowed_models == ["gpt-4.1-mini"]
    assert "Saved: Allowed models." in page.locator(".messages").inner_text()

    page.goto(f"{live_server.url}/orgs/{organization.public_id}/edit/")
    screenshot("forms-06-organization-edit")
    page.goto(f"{live_server.url}/orgs/{organization.public_id}/audit/")
    page.select_option("#id_action", "project.settings_update")
    page.click("button:has-text('Filter')")
    page.wait_for_load_state("networkidle")
    assert "project.settings_update" in page.locator("#events").inner_text()
    screenshot("forms-07-audit-log")

    # At phone width the forms fit: nothing scrolls sideways.
    page.set_viewport_size({"width": 390, "height": 844})
    for slug, path in [
        ("settings", f"/orgs/projects/{project.public_id}/settings/"),
        ("key-create", f"/keys/projects/{project.public_id}/new/"),
        ("organization-create", "/orgs/new/"),
        ("home", "/"),
        ("audit", f"/orgs/{organization.public_id}/audit/"),
    ]:
        page.goto(f"{live_server.url}{path}")
        assert page.evaluate("document.documentElement.scrollWidth") <= 390, slug
        screenshot(f"forms-08-narrow-{slug}")
    assert errors == []
