"""The admin key page, Sync now and the sync report in Chromium, as an organization owner,
against the simulator's Admin API; screenshots sync-pull-*.png under test-artifacts/."""

from __future__ import annotations

import secrets

import pytest

from keys.models import APIKey
from platformadmin.openai.simulator_admin import Injected

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _wide(page) -> int:
    return page.evaluate(
        "Math.max(document.documentElement.scrollWidth, document.body.scrollWidth)"
    )


def test_an_owner_stores_the_admin_key_tests_it_and_reads_the_sync_report(
    page, login, live_server, screenshot, openai_simulator, organization, project, owner
):
    admin_secret = f"sk-admin-{secrets.token_urlsafe(24)}"
    upstream = openai_simulator.admin.org(admin_secret)
    shop = upstream.add_project(project.name)
    bot = upstream.add_service_account(shop["id"], "deploy bot")
    upstream.add_key(shop["id"], name="bot key", service_account_id=bot["id"])
    upstream.add_key(shop["id"], name="made in the dashboard")
    upstream.add_project("Old lab", archived=True)
    upstream.add_user(shop["id"], email="ana@example.com", role="owner")

    login(owner)
    page.goto(f"{live_server.url}/sync/{organization.public_id}/admin-key/")
    page.fill("#id_secret", "sk-proj-" + "x" * 30)  # the wrong kind of key
    page.click("#store-admin-key-button")
    page.wait_for_load_state("networkidle")
    assert "an admin key starts with 'sk-admin-'" in page.content()
    screenshot("sync-pull-1-wrong-key")

    page.fill("#id_secret", admin_secret)
    page.fill("#id_base_url", openai_simulator.base_url)
    page.click("#store-admin-key-button")
    page.wait_for_load_state("networkidle")
    assert admin_secret not in page.content()
    page.click("#admin-key-test")
    page.wait_for_load_state("networkidle")
    assert "OpenAI accepted the admin key" in page.locator(".messages").inner_text()
    assert "passed" in page.locator("#admin-key-last-test").inner_text()
    screenshot("sync-pull-2-admin-key")

    page.goto(f"{live_server.url}/orgs/{organization.public_id}/")
    screenshot("sync-pull-0-organization")
    page.click("#org-sync-now")
    page.wait_for_load_state("networkidle")
    assert page.locator("#run-status").inner_text() == "Succeeded"
    details = page.locator("#run-details").inner_text()
    assert "made in the dashboard" in details and "secret not stored" in details
    assert "by its exact name" in details
    kinds = page.locator("#run-kinds").inner_text()
    assert "API keys" in kinds and "Projects" in kinds
    assert APIKey.objects.filter(project=project, secret_stored=False).count() == 2
    screenshot("sync-pull-3-report")

    # A listing that fails midway: the run is partial, nothing is marked deleted.
    upstream.inject.append(Injected("GET", r"/api_keys$", status=500, times=10))
    page.goto(f"{live_server.url}/sync/{organization.public_id}/history/")
    page.click("#sync-now")
    page.wait_for_load_state("networkidle")
    assert page.locator("#run-status").inner_text() == "Finished with errors"
    assert "Nothing was marked deleted" in page.locator("#run-errors").inner_text()
    assert not APIKey.objects.filter(status="deleted_upstream").exists()
    screenshot("sync-pull-4-partial")

    page.goto(f"{live_server.url}/sync/{organization.public_id}/history/")
    assert page.locator("#sync-runs tbody tr").count() == 2
    screenshot("sync-pull-5-history")
    page.set_viewport_size({"width": 390, "height": 844})
    for path in ("history/", "admin-key/"):
        page.goto(f"{live_server.url}/sync/{organization.public_id}/{path}")
        assert _wide(page) <= 391, path
    screenshot("sync-pull-6-admin-key-390")
