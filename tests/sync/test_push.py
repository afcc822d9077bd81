"""Pushes to OpenAI against the simulator: each one's effect upstream and here, the create
whose reply is lost (exactly one object), refusals naming the fix, and who may push."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.urls import reverse

from keys.models import APIKey
from keys.services import api_key_revoke, api_key_secret_for_call
from orgs.models import AuditEvent, ServiceAccount
from platformadmin.openai.admin import AdminAPIError
from platformadmin.openai.simulator_admin import Injected
from platformadmin.sync import push
from platformadmin.sync.models import UpstreamSpendAlert, UpstreamSpendLimit
from tests.factories import ProjectFactory
from usage.models import Budget

pytestmark = pytest.mark.django_db


def _accounts(upstream, project_id):
    return [a for a in upstream.service_accounts.values() if a["project_id"] == project_id]


# --- projects ------------------------------------------------------------------------


def test_a_project_created_upstream_is_linked_here_and_audited(linked, owner):
    fresh = ProjectFactory(organization=linked.organization, name="Data science")
    result = push.project_push_create(project=fresh, actor=owner)
    fresh.refresh_from_db()
    upstream = linked.upstream.projects[fresh.openai_project_id]
    assert upstream["name"] == "Data science" and not result.recovered
    assert [p["name"] for p in linked.upstream.projects.values()].count("Data science") == 1
    event = AuditEvent.objects.get(action="sync.push.project_create")
    assert event.detail["upstream"] == "push" and event.actor == owner
    with pytest.raises(push.PushRefused, match="already linked"):
        push.project_push_create(project=fresh, actor=owner)


def test_a_project_create_whose_reply_is_lost_leaves_one_project(linked, owner, settings):
    settings.OPENAI_ADMIN_TIMEOUT_SECONDS = 0.5
    linked.upstream.inject.append(Injected("POST", r"/organization/projects$", delay=1.5))
    fresh = ProjectFactory(organization=linked.organization, name="Late reply")
    result = push.project_push_create(project=fresh, actor=owner)
    fresh.refresh_from_db()
    named = [p for p in linked.upstream.projects.values() if p["name"] == "Late reply"]
    assert len(named) == 1 and fresh.openai_project_id == named[0]["id"]
    assert result.recovered


# --- service accounts ------------------------------------------------------------------


def test_a_service_account_and_its_key_are_stored_at_once(linked, owner):
    created = push.service_account_push_create(project=linked.project, name="batch", actor=owner)
    upstream = _accounts(linked.upstream, linked.upstream_project["id"])
    assert [a["name"] for a in upstream] == ["batch"]
    account = ServiceAccount.objects.get(project=linked.project, openai_id=upstream[0]["id"])
    key = created.api_key
    assert key.kind == APIKey.Kind.SERVICE_ACCOUNT and key.service_account == account
    upstream_key = linked.upstream.api_keys[key.openai_key_id]
    assert api_key_secret_for_call(key) == upstream_key["value"] == created.secret
    assert created.secret not in str(APIKey.objects.filter(pk=key.pk).values().get())


def test_a_service_account_create_that_times_out_leaves_exactly_one_with_its_key(
    linked, owner, settings
):
    """The simulator creates the account, then replies after the client gave up: the
    listing finds it, the key whose value was lost is deleted and one new key is stored."""
    settings.OPENAI_ADMIN_TIMEOUT_SECONDS = 0.5
    linked.upstream.inject.append(Injected("POST", r"/service_accounts$", delay=1.5))
    created = push.service_account_push_create(project=linked.project, name="late", actor=owner)
    upstream = _accounts(linked.upstream, linked.upstream_project["id"])
    assert len(upstream) == 1
    assert ServiceAccount.objects.filter(project=linked.project).count() == 1
    assert created.result.recovered and created.api_key is not None
    keys_upstream = [
        k
        for k in linked.upstream.api_keys.values()
        if (k["owner"].get("service_account") or {}).get("id") == upstream[0]["id"]
    ]
    assert len(keys_upstream) == 1  # the lost one deleted, the stored one left
    assert api_key_secret_for_call(created.api_key) == keys_upstream[0]["value"]


def test_a_service_account_name_is_checked_before_anything_is_sent(linked, owner):
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError) as exc:
        push.service_account_push_create(project=linked.project, name="  ", actor=owner)
    assert "name" in exc.value.message_dict
    assert not _accounts(linked.upstream, linked.upstream_project["id"])


def test_a_failed_create_with_nothing_made_upstream_reports_the_error(linked, owner):
    linked.upstream.inject.append(Injected("POST", r"/service_accounts$", status=500))
    with pytest.raises(AdminAPIError, match="500"):
        push.service_account_push_create(project=linked.project, name="x", actor=owner)
    assert not ServiceAccount.objects.filter(project=linked.project).exists()


# --- keys -------------------------------------------------------------------------------


def test_a_key_revoked_here_is_deleted_upstream(linked, owner):
    linked.api_key.openai_key_id = linked.upstream_key["id"]
    linked.api_key.save(update_fields=["openai_key_id"])
    with pytest.raises(push.PushRefused, match="Revoke"):
        push.api_key_push_delete(api_key=linked.api_key, actor=owner)
    api_key_revoke(api_key=linked.api_key, actor=owner)
    linked.api_key.refresh_from_db()
    result = push.api_key_push_delete(api_key=linked.api_key, actor=owner)
    assert linked.upstream_key["id"] not in linked.upstream.api_keys
    assert "Deleted" in result.summary
    again = push.api_key_push_delete(api_key=linked.api_key, actor=owner)
    assert "already deleted" in again.summary
    assert AuditEvent.objects.filter(action="key.delete_upstream").count() == 2


def test_the_revoke_page_offers_the_upstream_delete(client, linked, owner):
    linked.api_key.openai_key_id = linked.upstream_key["id"]
    linked.api_key.save(update_fields=["openai_key_id"])
    client.force_login(owner)
    response = client.post(
        reverse("keys:key-revoke", kwargs={"key_id": linked.api_key.public_id}),
        {"reason": "x", "confirm": "on"},
    )
    target = reverse("sync:push-key-delete", kwargs={"key_id": linked.api_key.public_id})
    assert response.status_code == 302 and response["Location"] == target
    page = client.post(target, {})
    assert page.status_code == 400 and "Tick" in page.content.decode()
    assert linked.upstream_key["id"] in linked.upstream.api_keys
    done = client.post(target, {"confirm": "yes"})
    assert done.status_code == 302
    assert linked.upstream_key["id"] not in linked.upstream.api_keys


# --- rate limits ------------------------------------------------------------------------


def test_rate_limits_set_upstream_from_the_form(client, linked, owner):
    client.force_login(owner)
    url = reverse("sync:push-rate-limits", kwargs={"project_id": linked.project.public_id})
    page = client.get(url)
    assert page.status_code == 200 and "gpt-4.1-mini" in page.content.decode()
    bad = client.post(
        url, {"rate_limit": "rl-gpt-4.1-mini", "max_requests_per_1_minute": "-3", "confirm": "yes"}
    )
    assert bad.status_code == 400 and "whole number" in bad.content.decode()
    ok = client.post(
        url,
        {
            "rate_limit": "rl-gpt-4.1-mini",
            "max_requests_per_1_minute": "120",
            "max_tokens_per_1_minute": "90,000",
            "confirm": "yes",
        },
    )
    assert ok.status_code == 302
    row = linked.upstream.rate_limits[linked.upstream_project["id"]]["rl-gpt-4.1-mini"]
    assert row["max_requests_per_1_minute"] == 120 and row["max_tokens_per_1_minute"] == 90_000
    unknown = client.post(
        url, {"rate_limit": "rl-nope", "max_requests_per_1_minute": "5", "confirm": "yes"}
    )
    assert unknown.status_code == 400 and "Choose one" in unknown.content.decode()


# --- budgets ------------------------------------------------------------------------------


def test_a_budgets_hard_limit_is_the_projects_spend_limit_in_cents(linked, owner):
    budget = Budget.objects.create(
        organization=linked.organization,
        project=linked.project,
        amount=Decimal("125.50"),
        thresholds=[50, 80],
        hard_limit=True,
    )
    push.budget_push(budget=budget, actor=owner)
    pid = linked.upstream_project["id"]
    assert linked.upstream.spend_limits[pid]["threshold_amount"] == 12550
    alerts = sorted(linked.upstream.spend_alerts[pid].values(), key=lambda a: a["threshold_amount"])
    assert [a["threshold_amount"] for a in alerts] == [6275, 10040]
    assert alerts[0]["notification_channel"]["recipients"] == [owner.email]
    assert UpstreamSpendLimit.objects.get(project=linked.project).threshold_cents == 12550
    # Idempotent: a second push creates nothing; a new owner's e-mail updates the alerts.
    again = push.budget_push(budget=budget, actor=owner)
    assert len(linked.upstream.spend_alerts[pid]) == 2 and not again.created
    owner.email = "finance@example.com"
    owner.save(update_fields=["email"])
    third = push.budget_push(budget=budget, actor=owner)
    assert len(linked.upstream.spend_alerts[pid]) == 2 and len(third.updated) == 3
    assert {a["notification_channel"]["recipients"][0] for a in alerts} == {"finance@example.com"}
    assert UpstreamSpendAlert.objects.filter(project=linked.project).count() == 2


def test_an_organization_budget_goes_to_the_organizations_spend_limit(linked, owner):
    budget = Budget.objects.create(
        organization=linked.organization, amount=Decimal("1000"), thresholds=[90], hard_limit=True
    )
    push.budget_push(budget=budget, actor=owner)
    assert linked.upstream.spend_limits["org"]["threshold_amount"] == 100_000
    assert [a["threshold_amount"] for a in linked.upstream.spend_alerts["org"].values()] == [90_000]


def test_a_budget_without_hard_limit_leaves_the_spend_limit_alone(linked, owner):
    budget = Budget.objects.create(
        organization=linked.organization,
        project=linked.project,
        amount=Decimal("10"),
        thresholds=[50],
    )
    result = push.budget_push(budget=budget, actor=owner)
    assert linked.upstream_project["id"] not in linked.upstream.spend_limits
    assert "left as it is" in result.summary


def test_a_budget_push_page_needs_the_yes_box_and_an_admin_key(client, linked, owner):
    budget = Budget.objects.create(
        organization=linked.organization, project=linked.project, amount=10, hard_limit=True
    )
    client.force_login(owner)
    url = reverse("sync:push-budget", kwargs={"budget_id": budget.public_id})
    page = client.get(url)
    assert page.status_code == 200 and "1000 cents" in page.content.decode()
    assert client.post(url, {}).status_code == 400
    assert client.post(url, {"confirm": "yes"}).status_code == 302
    assert linked.upstream.spend_limits[linked.upstream_project["id"]]["threshold_amount"] == 1000


def test_pushes_without_an_admin_key_are_refused_with_the_fix(client, owner, project):
    client.force_login(owner)
    url = reverse("sync:push-project", kwargs={"project_id": project.public_id})
    response = client.post(url, {"confirm": "yes"})
    assert response.status_code == 400
    assert "no admin key" in response.content.decode()


# --- who may push -------------------------------------------------------------------------


@pytest.mark.parametrize("who", ["reader", "project_owner", "member"])
def test_only_organization_owners_push(client, linked, request, who):
    client.force_login(request.getfixturevalue(who))
    url = reverse("sync:push-service-account", kwargs={"project_id": linked.project.public_id})
    assert client.get(url).status_code == 403
    assert client.post(url, {"name": "x", "confirm": "yes"}).status_code == 403
    assert not _accounts(linked.upstream, linked.upstream_project["id"])


def test_outsiders_get_404(client, linked, outsider):
    client.force_login(outsider)
    for name, kwargs in [
        ("sync:push-project", {"project_id": linked.project.public_id}),
        ("sync:push-key-delete", {"key_id": linked.api_key.public_id}),
        ("sync:audit-log-pull", {"org_id": linked.organization.public_id}),
    ]:
        assert client.post(reverse(name, kwargs=kwargs), {"confirm": "yes"}).status_code == 404
