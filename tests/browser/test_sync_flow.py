"""Issue 13 end to end in Chromium, as an organization owner, against the simulator's Admin
API: store the admin key and sync, create a service account upstream and see its key once,
rotate that key through OpenAI, and read the reconciliation page.

Each step asserts what the page shows and what the simulated OpenAI organization holds
(``openai_simulator.admin.org(admin_key)``); each page is saved under test-artifacts/
as sync-flow-*.png.
"""

from __future__ import annotations

import datetime as dt
import secrets

import pytest
from django.urls import reverse
from openai import OpenAI

from keys.models import APIKey
from platformadmin.openai.results import GenerateParams
from platformadmin.openai.services import generate
from platformadmin.sync.models import KeyRotation
from platformadmin.sync.rotation import rotation_advance

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _messages(page) -> str:
    return page.locator(".messages").inner_text()


def test_an_owner_syncs_pushes_rotates_and_reconciles(
    page, login, live_server, screenshot, openai_simulator, organization, project, owner, settings
):
    settings.RECONCILIATION_GAP_MIN_USD = "0.000001"  # the simulator's calls cost fractions
    admin_secret = f"sk-admin-{secrets.token_urlsafe(24)}"
    upstream = openai_simulator.admin.org(admin_secret)
    # OpenAI's side before the console knows it: the project (same name: linked by the
    # pull), a key made in OpenAI's dashboard, and a project that exists only upstream.
    upstream_project = upstream.add_project(project.name)
    dashboard_key = upstream.add_key(upstream_project["id"], name="made in the dashboard")
    upstream.add_project("Research (upstream only)")

    # 1. The admin key, stored through the page, tested, then "Sync now" and its report.
    login(owner)
    page.goto(f"{live_server.url}/orgs/{organization.public_id}/")
    page.click("#org-sync")
    page.wait_for_load_state("networkidle")
    assert "No sync yet." in page.locator("#sync-runs").inner_text()
    page.click("a:has-text('Admin key')")
    page.wait_for_load_state("networkidle")
    assert page.locator("#no-admin-key").count() == 1
    page.fill("#id_secret", admin_secret)
    page.fill("#id_base_url", openai_simulator.base_url)
    page.click("#store-admin-key-button")
    page.wait_for_load_state("networkidle")
    assert "stored (encrypted)" in _messages(page)
    assert admin_secret not in page.content()  # only the hint, never the key
    hint = page.locator("#admin-key-hint").inner_text()
    assert hint and hint != admin_secret and hint[-4:] == admin_secret[-4:]
    page.click("#admin-key-test")
    page.wait_for_load_state("networkidle")
    assert "OpenAI accepted the admin key" in _messages(page)
    assert "passed" in page.locator("#admin-key-last-test").inner_text()
    screenshot("sync-flow-1-admin-key")

    page.click("#sync-now")
    page.wait_for_load_state("networkidle")
    assert "Synced with OpenAI" in _messages(page)
    assert page.locator("#run-status").inner_text() == "Succeeded"
    details = page.locator("#run-details").inner_text()
    assert "Research (upstream only)" in details
    assert "made in the dashboard" in details
    imported = APIKey.objects.get(openai_key_id=dashboard_key["id"])
    assert imported.project == project and not imported.secret_stored  # known, not stored
    project.refresh_from_db()
    assert project.openai_project_id == upstream_project["id"]
    screenshot("sync-flow-2-sync-report")

    # A second sync with nothing changed upstream changes nothing here.
    page.goto(f"{live_server.url}/sync/{organization.public_id}/history/")
    page.click("#sync-now")
    page.wait_for_load_state("networkidle")
    totals = page.locator("#run-totals").inner_text()
    assert totals.startswith("0 created · 0 updated · 0 deleted upstream"), totals
    page.goto(f"{live_server.url}/sync/{organization.public_id}/history/")
    assert page.locator("#sync-runs tbody tr").count() == 2
    screenshot("sync-flow-3-sync-history")

    # 2. A service account created at OpenAI: its key is shown once, and never again.
    page.goto(live_server.url + reverse("orgs:project-detail", args=[project.public_id]))
    page.click("#push-service-account")
    page.wait_for_load_state("networkidle")
    page.fill("#sa-name", "billing-worker")
    page.check("#push-confirm")
    page.click("#push-submit")
    page.wait_for_load_state("networkidle")
    accounts = [a for a in upstream.service_accounts.values() if a["name"] == "billing-worker"]
    assert len(accounts) == 1, accounts
    account = accounts[0]
    (sa_key,) = [
        k
        for k in upstream.api_keys.values()
        if (k["owner"].get("service_account") or {}).get("id") == account["id"]
    ]
    shown = page.locator("#secret-once").inner_text().strip()
    assert shown == sa_key["value"]  # the value OpenAI returned once
    assert "billing-worker" in page.locator("h1").inner_text()
    screenshot("sync-flow-4-service-account-key-once")
    stored = APIKey.objects.get(openai_key_id=sa_key["id"])
    assert stored.secret_stored and stored.kind == APIKey.Kind.SERVICE_ACCOUNT
    assert sa_key["value"] not in str(APIKey.objects.filter(pk=stored.pk).values("secret")[0])
    page.click("a:has-text('Done — open the key')")
    page.wait_for_load_state("networkidle")
    assert sa_key["value"] not in page.content()
    assert stored.hint in page.content()
    page.reload()
    page.wait_for_load_state("networkidle")
    assert sa_key["value"] not in page.content()
    screenshot("sync-flow-5-service-account-key-detail")
    # The page that showed it, opened again, is the empty form.
    page.goto(f"{live_server.url}/sync/projects/{project.public_id}/push/service-account/")
    assert sa_key["value"] not in page.content()
    assert page.locator("#secret-once").count() == 0

    # 3. A rotation of that key through OpenAI: promoted now, the old key deleted after grace.
    page.goto(live_server.url + reverse("keys:key-detail", args=[stored.public_id]))
    page.click("#key-rotate-upstream")
    page.wait_for_load_state("networkidle")
    assert "No rotation yet." in page.locator("#rotations").inner_text()
    assert page.locator("#rotation-key").input_value() == str(stored.public_id)  # preselected
    page.check("#rotation-start input[name=confirm]")
    page.click("button:has-text('Rotate through OpenAI')")
    page.wait_for_load_state("networkidle")
    assert "is current" in _messages(page), _messages(page)
    rotation = KeyRotation.objects.get(previous_key=stored)
    assert rotation.step == KeyRotation.Step.PROMOTED
    row = page.locator(f"#rotations tr[data-rotation='{rotation.public_id}']")
    assert row.get_attribute("data-step") == "promoted"
    assert "redeploy before then" in row.inner_text()
    assert stored.hint in row.inner_text() and rotation.pending_key.hint in row.inner_text()
    account_keys = [
        k
        for k in upstream.api_keys.values()
        if (k["owner"].get("service_account") or {}).get("id") == account["id"]
    ]
    assert len(account_keys) == 2  # the old one still works during the grace period
    stored.refresh_from_db()
    new_key = APIKey.objects.get(pk=rotation.pending_key_id)
    assert new_key.status == APIKey.Status.ACTIVE and stored.status != APIKey.Status.ACTIVE
    assert (
        not APIKey.objects.filter(
            service_account=stored.service_account, status=APIKey.Status.ACTIVE
        )
        .exclude(pk=new_key.pk)
        .exists()
    )  # exactly one current key
    screenshot("sync-flow-6-rotation-promoted")

    # After the grace period the worker's tick deletes the old key at OpenAI.
    after_grace = rotation.grace_until + dt.timedelta(minutes=1)
    assert rotation_advance(rotation_id=rotation.pk, now=after_grace).step == "done"
    assert sa_key["id"] not in upstream.api_keys
    (remaining,) = [
        k
        for k in upstream.api_keys.values()
        if (k["owner"].get("service_account") or {}).get("id") == account["id"]
    ]
    assert remaining["id"] == new_key.openai_key_id
    page.reload()
    page.wait_for_load_state("networkidle")
    row = page.locator(f"#rotations tr[data-rotation='{rotation.public_id}']")
    assert row.get_attribute("data-step") == "done"
    screenshot("sync-flow-7-rotation-done")

    # 4. The rotated key serves a call through the console; an application that does not
    # report calls OpenAI directly; the reconciliation page shows both, the second flagged.
    assert generate(
        api_key=new_key,
        project=project,
        params=GenerateParams(model="gpt-4.1-mini", input="after the rotation"),
    ).ok
    app = OpenAI(api_key=remaining["value"], base_url=openai_simulator.base_url)
    app.responses.create(model="gpt-5.4-mini", input="an application that does not report " * 8)
    app.close()
    page.goto(f"{live_server.url}/orgs/{organization.public_id}/")
    page.click("#org-reconciliation")
    page.wait_for_load_state("networkidle")
    page.click("button:has-text('Pull now from OpenAI')")
    page.wait_for_load_state("networkidle")
    assert "usage and costs" in _messages(page)
    reported = page.locator("#reconciliation tr[data-model='gpt-4.1-mini']").inner_text()
    assert "1 / 1" in reported and "$0.00" in reported
    missing = page.locator("#reconciliation tr[data-model='gpt-5.4-mini']")
    assert "0 / 1" in missing.inner_text()
    assert "flagged" in (missing.get_attribute("class") or "")
    screenshot("sync-flow-8-reconciliation")
