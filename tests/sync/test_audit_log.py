"""OpenAI's audit log pulled into the console's: every event once, marked upstream, with
its actor, dated when it happened; every page followed; a failed listing records nothing."""

from __future__ import annotations

import time

import pytest
from django.urls import reverse

from orgs.models import AuditEvent
from platformadmin.openai.simulator_admin import Injected
from platformadmin.sync.audit import audit_log_pull
from platformadmin.sync.models import SyncCursor, SyncRun

pytestmark = pytest.mark.django_db


def _upstream_rows(organization):
    return AuditEvent.objects.filter(organization=organization, action__startswith="upstream.")


def test_events_are_recorded_once_marked_upstream_with_their_actor(linked):
    run = audit_log_pull(organization=linked.organization)
    assert run.status == SyncRun.Status.SUCCEEDED, run.report
    rows = {e.action: e for e in _upstream_rows(linked.organization)}
    # The fixture made the project and a key "in OpenAI's dashboard".
    assert set(rows) == {"upstream.project.created", "upstream.api_key.created"}
    created = rows["upstream.api_key.created"]
    assert created.detail["upstream"] == "openai"
    assert created.actor is None and created.actor_label == "openai:owner@example.com"
    assert created.detail["actor"]["ip_address"] == "203.0.113.7"
    assert created.project == linked.project  # mapped by the OpenAI project id
    assert created.detail["event"] == {"id": linked.upstream_key["id"]}
    assert created.target_id == linked.upstream.audit_log[1]["id"]

    again = audit_log_pull(organization=linked.organization)
    assert again.report["created"] == 0 and again.report["unchanged"] >= 0
    assert _upstream_rows(linked.organization).count() == 2

    linked.upstream.delete_key(linked.upstream_key["id"])
    linked.upstream.event(
        "rate_limit.updated",
        project_id=linked.upstream_project["id"],
        data={"id": "rl-gpt-4.1-mini", "changes_requested": {"max_requests_per_1_minute": 9}},
    )
    third = audit_log_pull(organization=linked.organization)
    assert third.report["created"] == 2
    actions = list(_upstream_rows(linked.organization).values_list("action", flat=True))
    assert sorted(actions) == sorted(
        [
            "upstream.project.created",
            "upstream.api_key.created",
            "upstream.api_key.deleted",
            "upstream.rate_limit.updated",
        ]
    )


def test_an_api_key_actor_and_an_unknown_type_are_recorded_generically(linked):
    entry = linked.upstream.event("tenant.something_new", data={"note": "x" * 5000})
    entry["actor"] = {"type": "api_key", "api_key": {"id": "key_abc", "type": "user"}}
    audit_log_pull(organization=linked.organization)
    row = _upstream_rows(linked.organization).get(action="upstream.tenant.something_new")
    assert row.actor_label == "openai:key key_abc"
    assert row.project is None
    assert "truncated" in row.detail["event"] and len(row.detail["event"]["truncated"]) <= 2000


def test_every_page_is_followed(linked):
    for i in range(230):
        linked.upstream.event("project.updated", data={"id": f"p{i}"})
    run = audit_log_pull(organization=linked.organization)
    assert run.report["created"] == 232
    assert _upstream_rows(linked.organization).count() == 232


def test_a_listing_that_fails_midway_records_nothing_and_keeps_the_cursor(linked):
    for i in range(150):
        linked.upstream.event("project.updated", data={"id": f"p{i}"})
    linked.upstream.inject.append(
        Injected("GET", r"/organization/audit_logs$", status=500, with_after=True, times=None)
    )
    run = audit_log_pull(organization=linked.organization)
    assert run.status == SyncRun.Status.FAILED
    assert "500" in run.report["errors"][0]
    assert not _upstream_rows(linked.organization).exists()
    assert (
        SyncCursor.objects.get(organization=linked.organization, stream="audit_log").position == ""
    )
    linked.upstream.inject.clear()
    assert audit_log_pull(organization=linked.organization).report["created"] == 152


def test_the_first_pull_reads_the_last_30_days_and_the_cursor_moves_on(linked):
    old = linked.upstream.event("project.archived", data={"id": "old"})
    old["effective_at"] = int(time.time()) - 31 * 86_400
    audit_log_pull(organization=linked.organization)
    assert not _upstream_rows(linked.organization).filter(action="upstream.project.archived")
    cursor = SyncCursor.objects.get(organization=linked.organization, stream="audit_log")
    assert int(cursor.position) >= int(time.time()) - 5


def test_no_admin_key_fails_with_the_fix(organization):
    run = audit_log_pull(organization=organization)
    assert run.status == SyncRun.Status.FAILED
    assert "admin key" in run.report["errors"][0]


def test_the_button_is_for_owners(client, linked, owner, reader):
    url = reverse("sync:audit-log-pull", kwargs={"org_id": linked.organization.public_id})
    client.force_login(reader)
    assert client.post(url).status_code == 403
    assert not _upstream_rows(linked.organization).exists()
    client.force_login(owner)
    assert client.get(url).status_code == 405
    response = client.post(url, follow=True)
    assert "2 new events" in response.content.decode()
    assert _upstream_rows(linked.organization).count() == 2


def test_the_task_pulls_and_beat_runs_the_fan_out_every_15_minutes(linked, settings):
    from platformadmin.celery import app
    from platformadmin.sync.audit import audit_log_pull_task

    entry = settings.CELERY_BEAT_SCHEDULE["sync-audit-log-pull"]
    assert entry["task"] == "sync.audit_log_pull_all" and entry["schedule"] == 900.0
    assert {"sync.audit_log_pull_all", "sync.audit_log_pull"} <= set(app.tasks)
    assert audit_log_pull_task(linked.organization.pk) == SyncRun.Status.SUCCEEDED
    assert audit_log_pull_task(10**9) is None  # an organization deleted meanwhile
    assert _upstream_rows(linked.organization).count() == 2
