"""Layout in Chromium (issue 9): wide tables at 1,440 px, times on one line, usable at 390 px.

Measured in the real browser with the console's CSS: the content column, the height of a
time cell against one line of text, the page's own width at phone size (a table may scroll
in its wrapper, the page may not), and the Stop button's look when disabled.
Screenshots: test-artifacts/layout-*.png.
"""

from __future__ import annotations

import datetime as dt

import pytest
from django.template.loader import render_to_string
from django.urls import reverse

from tests.conftest import ensure_catalog
from tests.factories import (
    TEST_PASSWORD,
    OrganizationFactory,
    ProjectFactory,
    UserFactory,
    add_org_member,
    add_project_member,
)
from tests.platformadmin.helpers import sim_key
from tests.usage.conftest import response_json
from usage.services import ingestion_token_create, usage_record_create

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# The page's own width (not a table's scroll area) and what sticks out.
PAGE_WIDTH = "() => Math.max(document.documentElement.scrollWidth, document.body.scrollWidth)"
# How many lines each time cell's text takes (1 = not wrapped), whatever the row's height.
WHEN_LINES = """() => [...document.querySelectorAll('td.when')].map(td => {
  const range = document.createRange();
  range.selectNodeContents(td);
  return new Set([...range.getClientRects()].filter(r => r.width > 0).map(r => Math.round(r.top))).size;
})"""


@pytest.fixture
def console(openai_simulator):
    """An organization named like the demo one, a production project with keys and usage."""
    ensure_catalog()
    org = OrganizationFactory(name="Acme", slug="acme", tier="tier_4")
    project = ProjectFactory(organization=org, name="Production", environment="production")
    owner = UserFactory(username="owner")
    add_org_member(owner, org, "owner")
    key = sim_key(project, openai_simulator, name="backend service")
    now = dt.datetime.now(dt.UTC)
    for i in range(12):
        usage_record_create(
            project=project,
            api_key=key,
            source="playground",
            response=response_json(
                f"resp_layout_{i}",
                inp=80229 + i,
                out=1500,
                created_at=(now - dt.timedelta(hours=i)).timestamp(),
            ),
            server_request_id=f"req_{i:032x}",
            latency_ms=1234,
        )
    usage_record_create(
        project=project,
        source="ingest",
        model="tts-1",
        response_id="resp_unpriced",
        usage={"input_tokens": 10, "output_tokens": 0},
    )
    ingestion_token_create(project=project, name="billing-service", actor=owner)
    return {"org": org, "project": project, "owner": owner, "key": key}


def _urls(console) -> dict[str, str]:
    pid = console["project"].public_id
    return {
        "organization": reverse(
            "orgs:organization-detail", kwargs={"org_id": console["org"].public_id}
        ),
        "project": reverse("orgs:project-detail", kwargs={"project_id": pid}),
        "usage": reverse("usage:project-usage", kwargs={"project_id": pid}),
        "tokens": reverse("usage:ingestion-tokens", kwargs={"project_id": pid}),
        "key": reverse("keys:key-detail", kwargs={"key_id": console["key"].public_id}),
        "checklist": reverse("orgs:project-checklist", kwargs={"project_id": pid}),
    }


def test_wide_window_uses_the_width_and_keeps_times_on_one_line(
    page, live_server, login, console, screenshot
):
    page.set_viewport_size({"width": 1440, "height": 900})
    login(console["owner"], TEST_PASSWORD)
    for name, url in _urls(console).items():
        page.goto(live_server.url + url)
        screenshot(f"layout-1440-{name}")
        lines = page.evaluate(WHEN_LINES)
        assert all(n == 1 for n in lines), (name, lines)
        widest = page.evaluate(
            "() => Math.max(0, ...[...document.querySelectorAll('.table')]"
            ".map(t => t.getBoundingClientRect().width))"
        )
        assert widest > 1300, (name, widest)  # was about 1,100 px at 1,440
    page.goto(live_server.url + _urls(console)["usage"])
    assert page.locator("td.when").count() >= 12


def test_phone_width_has_no_sideways_page(page, live_server, login, console, screenshot):
    page.set_viewport_size({"width": 390, "height": 844})
    login(console["owner"], TEST_PASSWORD)
    for name, url in _urls(console).items():
        page.goto(live_server.url + url)
        screenshot(f"layout-390-{name}")
        width = page.evaluate(PAGE_WIDTH)
        assert width <= 391, (name, width)


def test_a_disabled_stop_button_looks_disabled(page, live_server, login, console, screenshot):
    login(console["owner"], TEST_PASSWORD)
    page.goto(
        live_server.url + reverse("playground:index") + f"?project={console['project'].public_id}"
    )
    stop = page.locator("#stop-button")
    assert stop.is_disabled()
    look = "el => [getComputedStyle(el).opacity, getComputedStyle(el).backgroundColor, getComputedStyle(el).cursor]"
    disabled = stop.evaluate(look)
    screenshot("layout-playground")  # Stop greyed out next to Run
    stop.evaluate("el => { el.disabled = false; }")
    enabled = stop.evaluate(look)
    assert disabled != enabled, (disabled, enabled)
    assert float(disabled[0]) < 1 and disabled[2] == "not-allowed"


def test_error_pages_read_as_console_pages(page, live_server, login, console, screenshot):
    """403 (a member on the token page), 404, the CSRF failure and 500: the console's frame,
    a card that says why and a way back, an icon (no /favicon.ico 404), no sideways page."""
    member = UserFactory(username="member")
    add_project_member(member, console["project"], "member")
    missing: list[str] = []
    page.on(
        "response",
        lambda r: missing.append(r.url) if r.status == 404 and "favicon" in r.url else None,
    )
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(live_server.url + "/accounts/login/")
    page.evaluate("document.querySelector('input[name=csrfmiddlewaretoken]').value = 'stale'")
    page.fill("#id_username", "member")
    page.fill("#id_password", TEST_PASSWORD)
    page.click("button[type=submit]")
    assert page.locator("h1").inner_text() == "This form has expired"
    screenshot("error-403-csrf")
    login(member, TEST_PASSWORD)
    checks = {
        "403": (_urls(console)["tokens"], "You can't do that here"),
        "404": ("/orgs/projects/00000000-0000-0000-0000-000000000000/", "Page not found"),
    }
    for name, (url, title) in checks.items():
        response = page.goto(live_server.url + url)
        assert response.status == int(name)
        assert page.locator("h1").inner_text() == title
        assert page.locator(".error-page.card a[href='/']").count() == 1
        assert page.evaluate(PAGE_WIDTH) <= 391
        screenshot(f"error-{name}")
    page.set_content(
        render_to_string("500.html")
    )  # at the live server's origin: its CSS and icon load
    page.wait_for_load_state("networkidle")
    assert page.locator(".error-page.card").count() == 1
    assert page.locator("link[rel=icon]").count() == 1
    screenshot("error-500")
    assert not missing, missing
