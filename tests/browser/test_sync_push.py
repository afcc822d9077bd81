"""Pushes in Chromium: an owner creates a service account at OpenAI and reads its key once,
sets a model's rate limits, pushes a budget's hard limit (the simulator's project spend
limit, in cents) and pulls OpenAI's audit log into the console's."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.urls import reverse

from keys.services import api_key_secret_for_call
from orgs.models import ServiceAccount
from tests.sync.conftest import linked  # noqa: F401  (the fixture, shared with tests/sync)
from usage.models import Budget

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_an_owner_pushes_to_openai(page, login, live_server, screenshot, linked, owner):  # noqa: F811
    login(owner)
    base = live_server.url
    project = linked.project
    page.goto(base + reverse("orgs:project-detail", kwargs={"project_id": project.public_id}))
    page.click("#push-service-account")
    page.fill("#sa-name", "nightly-batch")
    screenshot("sync-push-service-account")
    page.click("#push-submit")  # the yes box is required: the browser refuses the form
    assert "secret-once" not in page.content()
    page.check("#push-confirm")
    page.click("#push-submit")
    page.wait_for_load_state("networkidle")
    secret = page.locator("#secret-once").inner_text().strip()
    account = ServiceAccount.objects.get(project=project, name="nightly-batch")
    key = account.api_keys.get()
    assert secret.startswith("sk-svcacct-") and api_key_secret_for_call(key) == secret
    screenshot("sync-push-service-account-created")
    page.goto(base + reverse("keys:key-detail", kwargs={"key_id": key.public_id}))
    assert secret not in page.content()  # shown once: the key page has the hint only

    page.goto(base + reverse("sync:push-rate-limits", kwargs={"project_id": project.public_id}))
    page.select_option("#rl-model", label="gpt-4.1-mini")
    page.fill("#rl-rpm", "120")
    page.check("#push-confirm")
    page.click("#push-submit")
    page.wait_for_load_state("networkidle")
    assert "Set the rate limits of gpt-4.1-mini" in page.locator(".messages").inner_text()
    assert "120" in page.locator("#rate-limits tr[data-model='gpt-4.1-mini']").inner_text()
    screenshot("sync-push-rate-limits")

    budget = Budget.objects.create(
        organization=linked.organization,
        project=project,
        amount=Decimal("250"),
        thresholds=[50, 80, 100],
        hard_limit=True,
    )
    page.goto(base + reverse("usage:budget-detail", kwargs={"budget_id": budget.public_id}))
    page.click("#push-budget")
    assert "25000 cents" in page.locator("#budget-plan").inner_text()
    screenshot("sync-push-budget")
    page.check("#push-confirm")
    page.click("#push-submit")
    page.wait_for_load_state("networkidle")
    assert "spend limit" in page.locator(".messages").inner_text()
    assert linked.upstream.spend_limits[linked.upstream_project["id"]]["threshold_amount"] == 25000

    page.goto(base + reverse("orgs:audit-log", kwargs={"org_id": linked.organization.public_id}))
    page.click("#audit-log-pull")
    page.wait_for_load_state("networkidle")
    assert "new events" in page.locator(".messages").inner_text()
    assert "upstream.rate_limit.updated" in page.content()
    screenshot("sync-audit-log-pulled")


def test_an_owner_creates_a_project_upstream_and_deletes_a_revoked_key(
    page,
    login,
    live_server,
    screenshot,
    linked,  # noqa: F811
    owner,
):
    from keys.services import api_key_revoke
    from tests.factories import ProjectFactory

    fresh = ProjectFactory(organization=linked.organization, name="Research")
    login(owner)
    base = live_server.url
    page.goto(base + reverse("orgs:project-detail", kwargs={"project_id": fresh.public_id}))
    page.click("#push-project")
    screenshot("sync-push-project")
    page.check("#push-confirm")
    page.click("#push-submit")
    page.wait_for_load_state("networkidle")
    fresh.refresh_from_db()
    assert fresh.openai_project_id in linked.upstream.projects
    assert "linked it" in page.locator(".messages").inner_text()

    linked.api_key.openai_key_id = linked.upstream_key["id"]
    linked.api_key.save(update_fields=["openai_key_id"])
    api_key_revoke(api_key=linked.api_key, actor=owner)
    page.goto(base + reverse("keys:key-detail", kwargs={"key_id": linked.api_key.public_id}))
    page.click("#push-key-delete")
    screenshot("sync-push-key-delete")
    page.check("#push-confirm")
    page.click("#push-submit")
    page.wait_for_load_state("networkidle")
    assert "Deleted" in page.locator(".messages").inner_text()
    assert linked.upstream_key["id"] not in linked.upstream.api_keys
