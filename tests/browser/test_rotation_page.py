"""The Rotation page in Chromium: reached from the organization page, keys by due date with
their stage and last reminder, dates in the billing timezone; at desktop and phone width
(the table scrolls inside its frame, the page does not scroll sideways)."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from keys.reminders import rotation_reminders_scan
from tests.factories import (
    OrganizationFactory,
    ProjectFactory,
    UserFactory,
    add_org_member,
    add_project_member,
    make_api_key,
)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_the_rotation_page_in_the_browser(page, login, live_server, screenshot):
    organization = OrganizationFactory(name="Acme", slug="acme", billing_timezone="Europe/Paris")
    owner = UserFactory(username="alice")
    add_org_member(owner, organization, "owner")
    checkout = ProjectFactory(organization=organization, name="Checkout", rotation_period_days=90)
    research = ProjectFactory(organization=organization, name="Research", rotation_period_days=30)
    add_project_member(UserFactory(username="bob"), research, "owner")
    now = timezone.now()
    for name, project, age in [
        ("checkout-web", checkout, 20),
        ("checkout-batch", checkout, 85),
        ("nightly-eval", research, 34),
        ("notebook", research, 29),
    ]:
        api_key = make_api_key(project, name=name)
        type(api_key).objects.filter(pk=api_key.pk).update(created_at=now - dt.timedelta(days=age))
    rotation_reminders_scan(now=now)

    login(owner)
    page.goto(f"{live_server.url}/orgs/{organization.public_id}/")
    page.click("a.button:has-text('Rotation')")
    page.wait_for_load_state("networkidle")
    assert page.locator("h1").inner_text() == "Key rotation"
    names = page.locator("#rotation tbody tr td:first-child a").all_inner_texts()
    assert names == ["nightly-eval", "notebook", "checkout-batch", "checkout-web"]
    first = page.locator("#rotation tbody tr").first.inner_text()
    assert "overdue, due 4 days ago" in first and "On the day" in first and " CET" in first
    assert page.locator("#rotation-overdue").inner_text() == "1"
    assert page.locator("#rotation-soon").inner_text() == "2"
    screenshot("rotation-page")

    page.set_viewport_size({"width": 390, "height": 844})
    page.reload()
    page.wait_for_load_state("networkidle")
    width = page.evaluate(
        "Math.max(document.documentElement.scrollWidth, document.body.scrollWidth)"
    )
    assert width <= 391, f"the page scrolls sideways at 390 px ({width} px wide)"
    screenshot("rotation-page-phone")
