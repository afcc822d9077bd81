"""The production-readiness checklist, computed from live data."""

from __future__ import annotations

import datetime as dt

import pytest
import time_machine
from django.urls import reverse

from keys import services as key_services
from platformadmin.checklist import project_checklist
from tests.factories import make_api_key

pytestmark = pytest.mark.django_db

NOW = dt.datetime(2026, 5, 1, 12, tzinfo=dt.UTC)


def _rows(project, now=NOW):
    return {row.title: row for row in project_checklist(project=project, now=now)}


def test_a_fresh_production_project(project):
    rows = _rows(project)
    assert rows["Project-scoped keys, minimum permissions"].status == "warn"  # no key yet
    assert rows["Keys rotated within the period"].status == "not applicable"  # nothing to rotate
    assert rows["Retries and timeouts configured"].status == "pass"
    assert rows["Circuit breaker on"].status == "pass"
    assert rows["Budget with alerts"].status == "not configured"
    assert rows["Output-token cap"].status == "warn"
    assert rows["Request ids and usage logged"].status in ("warn", "not configured")
    for row in rows.values():
        assert row.why
        if row.status in ("warn", "fail"):
            assert row.fix_url, row.title


def test_all_permissions_warn_only_in_production(project):
    with time_machine.travel(NOW, tick=False):
        key = make_api_key(project, permissions="all")
    row = _rows(project)["Project-scoped keys, minimum permissions"]
    assert row.status == "warn" and key.hint in row.why
    assert row.fix_url == reverse("keys:key-detail", kwargs={"key_id": key.public_id})
    project.environment = "development"
    project.save()
    assert _rows(project)["Project-scoped keys, minimum permissions"].status == "pass"


def test_rotation_is_due_then_overdue_then_fixed_by_rotating(project, owner):
    with time_machine.travel(NOW - dt.timedelta(days=80), tick=False):
        key = make_api_key(project, permissions="restricted")
    assert _rows(project)["Keys rotated within the period"].status == "warn"
    late = _rows(project, NOW + dt.timedelta(days=11))["Keys rotated within the period"]
    assert late.status == "fail"
    assert late.fix_url == reverse("keys:key-rotate", kwargs={"key_id": key.public_id})
    from tests.factories import fake_secret

    with time_machine.travel(NOW + dt.timedelta(days=11), tick=False):
        key_services.api_key_rotate(api_key=key, secret=fake_secret("proj"), actor=owner)
    assert (
        _rows(project, NOW + dt.timedelta(days=11))["Keys rotated within the period"].status
        == "pass"
    )


def test_revoked_keys_do_not_count(project, owner):
    with time_machine.travel(NOW - dt.timedelta(days=400), tick=False):
        key = make_api_key(project)
    key_services.api_key_revoke(api_key=key, actor=owner)
    assert _rows(project)["Keys rotated within the period"].status == "not applicable"
    with time_machine.travel(NOW - dt.timedelta(days=3), tick=False):
        make_api_key(project)
    assert _rows(project)["Keys rotated within the period"].status == "pass"


def test_rotation_does_not_pass_on_a_project_with_no_keys(project):
    row = _rows(project)["Keys rotated within the period"]
    assert row.status == "not applicable"
    assert "No active keys yet" in row.why
    assert row.fix_url == reverse("keys:key-create", kwargs={"project_id": project.public_id})


def test_fixes_a_reader_cannot_follow_are_not_links(project):
    """A reader or member following "Add a key" or "Ingestion tokens" would get a 403."""
    rows = project_checklist(project=project, now=NOW, can_manage=False)
    manage_urls = [
        reverse(name, kwargs={"project_id": project.public_id})
        for name in ("keys:key-create", "orgs:project-settings", "usage:ingestion-tokens")
    ]
    for row in rows:
        assert row.fix_url not in manage_urls, row.title
        if row.status in ("warn", "fail") and not row.fix_url:
            assert row.fix_label == "A project owner can fix this", row.title
    logged = {r.title: r for r in rows}["Request ids and usage logged"]
    assert logged.status == "warn" and logged.fix_url == ""


def test_client_settings_rows(project):
    project.max_retries = 0
    project.request_timeout_seconds = 600
    project.circuit_breaker_enabled = False
    project.max_output_tokens = 4000
    project.save()
    rows = _rows(project)
    assert rows["Retries and timeouts configured"].status == "warn"
    assert "max_retries = 0" in rows["Retries and timeouts configured"].why
    assert rows["Circuit breaker on"].status == "fail"
    assert rows["Output-token cap"].status == "pass"
    assert (
        "capped at 4,000 output tokens" in rows["Output-token cap"].why
    )  # a count, with separators


def test_recent_usage_passes_the_logging_row(project):
    from usage.services import usage_record_create

    assert _rows(project)["Request ids and usage logged"].status == "warn"
    usage_record_create(
        project=project,
        source="ingest",
        model="gpt-5.4-mini",
        response_id="resp_checklist_1",
        server_request_id="req_1",
        occurred_at=NOW - dt.timedelta(days=1),
        usage={"input_tokens": 10, "output_tokens": 5, "total_tokens": 15},
    )
    assert _rows(project)["Request ids and usage logged"].status == "pass"
    assert (
        _rows(project, NOW + dt.timedelta(days=30))["Request ids and usage logged"].status == "warn"
    )


def test_the_checklist_page(client, member, project):
    client.force_login(member)
    response = client.get(
        reverse("orgs:project-checklist", kwargs={"project_id": project.public_id})
    )
    page = response.content.decode()
    assert response.status_code == 200
    assert "Budget with alerts" in page and "not configured" in page
    fragment = client.get(
        reverse("orgs:project-checklist", kwargs={"project_id": project.public_id}),
        HTTP_HX_REQUEST="true",
    ).content.decode()
    assert fragment.lstrip().startswith('<div class="table-wrap" id="checklist">')
    # the member cannot manage the project: no fix links to pages that 403 for them
    assert reverse("usage:ingestion-tokens", kwargs={"project_id": project.public_id}) not in page
    assert reverse("keys:key-create", kwargs={"project_id": project.public_id}) not in page
    assert "A project owner can fix this" in page
