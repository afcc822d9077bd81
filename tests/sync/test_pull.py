"""The hierarchy pull against the simulator's Admin API (the real SDK end to end)."""

from __future__ import annotations

import secrets

import pytest
from django.db.models import Max

from keys.models import APIKey
from keys.services import api_key_create_unaudited, api_key_secret_for_call
from orgs.models import AuditEvent, Project, ServiceAccount
from platformadmin.celery import app
from platformadmin.openai.simulator_admin import Injected
from platformadmin.sync import pull
from platformadmin.sync.models import (
    SyncRun,
    UpstreamProjectUser,
    UpstreamRateLimit,
    UpstreamSpendAlert,
    UpstreamSpendLimit,
)
from platformadmin.sync.pull import hierarchy_pull

pytestmark = pytest.mark.django_db


def _admin(organization, simulator, secret=None):
    secret = secret or f"sk-admin-{secrets.token_urlsafe(24)}"
    api_key_create_unaudited(
        organization=organization,
        name="admin",
        secret=secret,
        kind="admin",
        base_url=simulator.base_url,
    )
    return simulator.admin.org(secret)


def _populate(upstream):
    """An upstream organization: two projects (one archived), accounts, keys, users, limits."""
    web = upstream.add_project("Web shop")
    old = upstream.add_project("Old lab", archived=True)
    bot = upstream.add_service_account(web["id"], "deploy bot")
    upstream.add_key(web["id"], name="dashboard key")
    upstream.add_key(web["id"], name="bot key", service_account_id=bot["id"])
    upstream.add_key(old["id"], name="lab key")
    upstream.add_user(web["id"], email="ana@example.com", role="owner")
    upstream.add_user(web["id"], email="bo@example.com")
    upstream.spend_limits[web["id"]] = {
        "object": "project.spend_limit",
        "currency": "USD",
        "interval": "month",
        "threshold_amount": 5000,
        "enforcement": {"status": "enforcing"},
    }
    upstream.spend_alerts.setdefault("org", {})["alert_1"] = {
        "id": "alert_1",
        "object": "organization.spend_alert",
        "currency": "USD",
        "interval": "month",
        "threshold_amount": 10000,
        "notification_channel": {"type": "email", "recipients": ["cfo@example.com"]},
    }
    return web, old, bot


def _stamps():
    """Every updated_at / synced_at the pull could touch, to prove a no-op pull is one."""
    return (
        Project.objects.aggregate(m=Max("updated_at"))["m"],
        APIKey.objects.aggregate(m=Max("updated_at"))["m"],
        ServiceAccount.objects.aggregate(m=Max("updated_at"))["m"],
        UpstreamProjectUser.objects.aggregate(m=Max("synced_at"))["m"],
        UpstreamRateLimit.objects.aggregate(m=Max("synced_at"))["m"],
        UpstreamSpendLimit.objects.aggregate(m=Max("synced_at"))["m"],
        UpstreamSpendAlert.objects.aggregate(m=Max("synced_at"))["m"],
        AuditEvent.objects.count(),
    )


def test_a_full_pull_into_an_empty_console_then_a_second_pull_changes_nothing(
    openai_simulator, organization, owner
):
    upstream = _admin(organization, openai_simulator)
    web, old, bot = _populate(upstream)

    run = hierarchy_pull(organization=organization, actor=owner)
    assert run.status == SyncRun.Status.SUCCEEDED, run.report
    kinds = run.report["kinds"]
    assert kinds["project"]["created"] == 2
    assert kinds["service_account"]["created"] == 1
    assert kinds["api_key"]["created"] == 3
    assert kinds["project_user"]["created"] == 2
    assert kinds["rate_limit"]["created"] == 4
    assert kinds["spend_limit"]["created"] == 1
    assert kinds["spend_alert"]["created"] == 1
    assert run.triggered_by == owner and run.finished_at

    shop = Project.objects.get(organization=organization, openai_project_id=web["id"])
    lab = Project.objects.get(organization=organization, openai_project_id=old["id"])
    assert shop.name == "Web shop" and shop.status == Project.Status.ACTIVE
    assert lab.status == Project.Status.ARCHIVED
    account = ServiceAccount.objects.get(project=shop)
    assert account.openai_id == bot["id"] and account.name == "deploy bot"
    bot_key = APIKey.objects.get(project=shop, name="bot key")
    assert bot_key.kind == APIKey.Kind.SERVICE_ACCOUNT and bot_key.service_account == account
    assert not bot_key.secret_stored and bot_key.secret == ""
    user_key = APIKey.objects.get(project=shop, name="dashboard key")
    assert user_key.kind == APIKey.Kind.PROJECT
    upstream_row = next(k for k in upstream.api_keys.values() if k["name"] == "dashboard key")
    assert user_key.hint == upstream_row["redacted_value"]
    assert upstream_row["value"] not in str(run.report)
    with pytest.raises(Exception, match="secret is not stored"):
        api_key_secret_for_call(user_key)
    assert UpstreamSpendLimit.objects.get(project=shop).threshold_cents == 5000
    alert = UpstreamSpendAlert.objects.get(project__isnull=True)
    assert alert.recipients == ["cfo@example.com"] and alert.threshold_cents == 10000
    assert (
        AuditEvent.objects.filter(action="key.import_upstream", detail__upstream=True).count() == 3
    )

    before = _stamps()
    second = hierarchy_pull(organization=organization, actor=owner)
    assert second.status == SyncRun.Status.SUCCEEDED, second.report
    assert second.report["created"] == second.report["updated"] == 0
    assert second.report["deleted_upstream"] == 0
    assert second.report["unchanged"] == run.report["created"]
    assert _stamps() == before  # no row updated, no audit row written
    assert SyncRun.objects.filter(organization=organization).count() == 2  # history kept


def test_upstream_deletions_and_a_key_made_in_openais_dashboard_are_detected(linked, owner):
    first = hierarchy_pull(organization=linked.organization, actor=owner)
    assert first.status == SyncRun.Status.SUCCEEDED, first.report
    linked.api_key.refresh_from_db()
    # The stored key is linked by its value, not imported a second time.
    assert linked.api_key.openai_key_id == linked.upstream_key["id"]
    assert linked.api_key.secret_stored
    assert APIKey.objects.filter(project=linked.project).count() == 1

    account = linked.upstream.add_service_account(linked.upstream_project["id"], "ci")
    sa_key = linked.upstream.add_key(
        linked.upstream_project["id"], name="ci key", service_account_id=account["id"]
    )
    made_upstream = linked.upstream.add_key(linked.upstream_project["id"], name="from dashboard")
    second = hierarchy_pull(organization=linked.organization)
    assert second.report["kinds"]["api_key"]["created"] == 2
    known = APIKey.objects.get(openai_key_id=made_upstream["id"])
    assert not known.secret_stored and known.status == APIKey.Status.ACTIVE
    assert any("from dashboard" in d and "secret not stored" in d for d in second.report["details"])

    linked.upstream.delete_key(linked.upstream_key["id"])
    linked.upstream.delete_key(sa_key["id"])
    del linked.upstream.service_accounts[account["id"]]
    third = hierarchy_pull(organization=linked.organization)
    assert third.status == SyncRun.Status.SUCCEEDED, third.report
    assert third.report["kinds"]["api_key"]["deleted_upstream"] == 2
    assert third.report["kinds"]["service_account"]["deleted_upstream"] == 1
    linked.api_key.refresh_from_db()
    assert linked.api_key.status == APIKey.Status.DELETED_UPSTREAM
    assert not linked.api_key.is_active  # the client layer refuses it
    assert ServiceAccount.objects.get(openai_id=account["id"]).deleted_upstream_at is not None
    assert AuditEvent.objects.filter(action="key.deleted_upstream").count() == 2

    fourth = hierarchy_pull(organization=linked.organization)
    assert fourth.report["deleted_upstream"] == 0  # marked once


def test_a_console_project_without_an_openai_id_is_linked_by_its_exact_name_once(
    openai_simulator, organization, project
):
    upstream = _admin(organization, openai_simulator)
    same = upstream.add_project(project.name)
    run = hierarchy_pull(organization=organization)
    project.refresh_from_db()
    assert project.openai_project_id == same["id"]
    assert run.report["kinds"]["project"] == {
        "created": 0,
        "updated": 1,
        "deleted_upstream": 0,
        "unchanged": 0,
    }
    assert any("by its exact name" in d for d in run.report["details"])


def test_two_upstream_projects_of_one_name_are_imported_with_a_suffix(
    openai_simulator, organization, project
):
    upstream = _admin(organization, openai_simulator)
    a = upstream.add_project(project.name)
    b = upstream.add_project(project.name)
    run = hierarchy_pull(organization=organization)
    project.refresh_from_db()
    assert project.openai_project_id == ""  # ambiguous: not linked by name
    names = set(
        Project.objects.filter(openai_project_id__in=[a["id"], b["id"]]).values_list(
            "name", flat=True
        )
    )
    assert len(names) == 2 and all(n.startswith(project.name + " (OpenAI ") for n in names)
    assert sum("already taken here" in d for d in run.report["details"]) == 2


def test_the_console_keeps_what_exists_only_here(linked):
    linked.project.allowed_models = ["gpt-4.1-mini"]
    linked.project.max_output_tokens = 100
    linked.project.name = "Renamed here"
    linked.project.save()
    linked.upstream_project["status"] = "archived"
    linked.upstream_project["archived_at"] = 1_700_000_000
    run = hierarchy_pull(organization=linked.organization)
    linked.project.refresh_from_db()
    assert linked.project.status == Project.Status.ARCHIVED  # OpenAI's
    assert linked.project.name == "Renamed here"  # ours
    assert linked.project.allowed_models == ["gpt-4.1-mini"]
    assert linked.project.max_output_tokens == 100
    assert any("keeps its own name" in d for d in run.report["details"])


def test_a_listing_that_fails_midway_deletes_nothing_and_the_run_is_partial(linked):
    for i in range(25):
        linked.upstream.add_key(linked.upstream_project["id"], name=f"k{i}")
    assert hierarchy_pull(organization=linked.organization).status == SyncRun.Status.SUCCEEDED
    known = APIKey.objects.filter(project=linked.project, status=APIKey.Status.ACTIVE).count()
    assert known == 26

    old_page = pull.PAGE
    pull.PAGE = 10  # three pages of keys; the second one fails
    try:
        linked.upstream.inject.append(
            Injected("GET", r"/api_keys$", status=500, with_after=True, times=10)
        )
        run = hierarchy_pull(organization=linked.organization)
    finally:
        pull.PAGE = old_page
    assert run.status == SyncRun.Status.PARTIAL
    assert any(
        "API keys not synced" in e and "Nothing was marked deleted" in e
        for e in run.report["errors"]
    )
    assert APIKey.objects.filter(project=linked.project, status=APIKey.Status.ACTIVE).count() == 26
    assert run.report["deleted_upstream"] == 0
    assert run.report["kinds"]["rate_limit"]["unchanged"] == 2  # the other parts still ran


def test_a_wrong_admin_key_fails_the_run_with_the_fix_and_without_the_key(
    openai_simulator, organization
):
    secret = f"sk-admin-fault-401-{secrets.token_urlsafe(20)}"
    _admin(organization, openai_simulator, secret)
    run = hierarchy_pull(organization=organization)
    assert run.status == SyncRun.Status.FAILED
    text = " ".join(run.report["errors"])
    assert "401" in text and "Store a current admin key" in text
    assert secret not in str(run.report) and secret[-12:] not in str(run.report)


def test_no_admin_key_is_a_failed_run_that_says_what_to_do(organization):
    run = hierarchy_pull(organization=organization)
    assert run.status == SyncRun.Status.FAILED
    assert "no admin key" in run.report["errors"][0]


def test_every_page_is_followed(openai_simulator, organization):
    upstream = _admin(organization, openai_simulator)
    projects = [upstream.add_project(f"p{i:02d}") for i in range(45)]
    for i in range(120):
        upstream.add_key(projects[0]["id"], name=f"key {i}")
    old_page = pull.PAGE
    pull.PAGE = 20  # 3 pages of projects, 6 of keys
    try:
        run = hierarchy_pull(organization=organization)
    finally:
        pull.PAGE = old_page
    assert run.status == SyncRun.Status.SUCCEEDED, run.report["errors"]
    assert Project.objects.filter(organization=organization).count() == 45
    assert APIKey.objects.filter(project__openai_project_id=projects[0]["id"]).count() == 120


def test_the_hourly_task_fans_out_one_pull_per_organization_with_an_admin_key(
    openai_simulator, organization, other_organization
):
    upstream = _admin(organization, openai_simulator)
    upstream.add_project("From beat")
    # The Celery app read its configuration at start-up: Django's settings fixture cannot
    # make it eager; its own conf can (restored after).
    before = app.conf.task_always_eager
    app.conf.task_always_eager = True
    try:
        assert pull.hierarchy_pull_all.apply().get() == 1
    finally:
        app.conf.task_always_eager = before
    assert Project.objects.filter(organization=organization, name="From beat").exists()
    assert not SyncRun.objects.filter(organization=other_organization).exists()
