"""The simulator's Admin API, driven by the real openai SDK over HTTP.

These pin the shapes the console's sync will read (openai.types.admin.organization), the
pagination the SDK follows, the faults the sync must survive, and that usage and costs
buckets agree with the model calls the simulator itself served.
"""

from __future__ import annotations

import secrets
import time
from datetime import UTC, datetime
from decimal import Decimal

import openai
import pytest
from openai import OpenAI

from platformadmin.openai.simulator_admin import Injected, day_start


def _admin_key(tag: str = "") -> str:
    return f"sk-admin-{tag}{secrets.token_hex(8)}"


@pytest.fixture
def upstream(openai_simulator):
    key = _admin_key()
    org = openai_simulator.admin.org(key)
    client = OpenAI(admin_api_key=key, base_url=openai_simulator.base_url, max_retries=0)
    yield org, client.admin.organization, openai_simulator
    client.close()


def test_projects_page_through_every_page_with_the_sdk(upstream):
    org, admin, _ = upstream
    made = [org.add_project(f"p{i}")["id"] for i in range(45)]
    org.add_project("old", archived=True)
    listed = [p.id for p in admin.projects.list(limit=20)]
    assert listed == made
    with_archived = list(admin.projects.list(limit=100, include_archived=True))
    assert len(with_archived) == 46
    assert with_archived[-1].archived_at is not None and with_archived[-1].status == "archived"


def test_a_wrong_admin_key_is_a_401(openai_simulator):
    client = OpenAI(admin_api_key="sk-proj-notadmin", base_url=openai_simulator.base_url)
    with pytest.raises(openai.AuthenticationError) as caught:
        client.admin.organization.projects.list()
    assert caught.value.status_code == 401


def test_a_429_carries_retry_after(upstream):
    org, admin, _ = upstream
    org.inject.append(Injected("GET", r"/projects$", status=429, retry_after=7))
    with pytest.raises(openai.RateLimitError) as caught:
        admin.projects.list()
    assert caught.value.response.headers["retry-after"] == "7"
    assert list(admin.projects.list()) == []  # armed once


def test_a_listing_can_fail_in_its_middle(upstream):
    org, admin, _ = upstream
    for i in range(5):
        org.add_project(f"p{i}")
    org.inject.append(Injected("GET", r"/projects$", status=500, with_after=True))
    pages = admin.projects.list(limit=2)
    assert [p.name for p in pages.data] == ["p0", "p1"]
    with pytest.raises(openai.InternalServerError):
        pages.get_next_page()


def test_service_account_key_is_returned_once_and_serves_calls(upstream):
    org, admin, sim = upstream
    project = admin.projects.create(name="batch jobs")
    account = admin.projects.service_accounts.create(project.id, name="etl")
    assert account.api_key is not None and account.api_key.value.startswith("sk-svcacct-")
    # The listing needs owner_project_access to show service-account keys.
    assert list(admin.projects.api_keys.list(project.id)) == []
    keys = list(admin.projects.api_keys.list(project.id, owner_project_access="active"))
    assert [k.id for k in keys] == [account.api_key.id]
    assert account.api_key.value not in keys[0].redacted_value
    assert keys[0].owner.type == "service_account"
    assert keys[0].owner.service_account.id == account.id

    served = OpenAI(api_key=account.api_key.value, base_url=sim.base_url, max_retries=0)
    reply = served.responses.create(model="gpt-4.1-mini", input="hello there")
    served.close()
    assert org.calls[-1]["api_key_id"] == account.api_key.id
    assert org.calls[-1]["input_tokens"] == reply.usage.input_tokens

    second = admin.projects.service_accounts.api_keys.create(
        account.id, project_id=project.id, name="next"
    )
    assert second.value != account.api_key.value
    deleted = admin.projects.api_keys.delete(account.api_key.id, project_id=project.id)
    assert deleted.deleted is True
    remaining = list(admin.projects.api_keys.list(project.id, owner_project_access="active"))
    assert [k.id for k in remaining] == [second.id]


def test_a_create_whose_reply_comes_too_late_still_created_one_object(upstream, openai_simulator):
    org, _, sim = upstream
    org.inject.append(Injected("POST", r"/service_accounts$", delay=1.0))
    slow = OpenAI(
        admin_api_key=org.admin_key, base_url=sim.base_url, max_retries=0, timeout=0.3
    ).admin.organization
    project = org.add_project("p")
    with pytest.raises(openai.APITimeoutError):
        slow.projects.service_accounts.create(project["id"], name="etl")
    time.sleep(1.0)
    assert [a["name"] for a in org.service_accounts.values()] == ["etl"]


def test_spend_limits_and_alerts_are_in_cents(upstream):
    org, admin, _ = upstream
    project = org.add_project("p")
    limit = admin.projects.spend_limit.update(
        project["id"], currency="USD", interval="month", threshold_amount=12_345
    )
    assert limit.threshold_amount == 12_345 and limit.enforcement.status == "enforcing"
    assert admin.projects.spend_limit.retrieve(project["id"]).threshold_amount == 12_345
    with pytest.raises(openai.BadRequestError):
        admin.projects.spend_limit.update(
            project["id"], currency="EUR", interval="month", threshold_amount=1
        )
    alert = admin.projects.spend_alerts.create(
        project["id"],
        currency="USD",
        interval="month",
        threshold_amount=10_000,
        notification_channel={"type": "email", "recipients": ["owner@example.com"]},
    )
    listed = list(admin.projects.spend_alerts.list(project["id"]))
    assert [a.id for a in listed] == [alert.id]
    org_limit = admin.spend_limit.update(currency="USD", interval="month", threshold_amount=99)
    assert org_limit.object == "organization.spend_limit"


def test_rate_limits_update_and_audit_log(upstream):
    org, admin, _ = upstream
    project = org.add_project("p")
    limits = list(admin.projects.rate_limits.list_rate_limits(project["id"]))
    assert {rl.model for rl in limits} == {"gpt-4.1-mini", "gpt-5.4-mini"}
    updated = admin.projects.rate_limits.update_rate_limit(
        limits[0].id, project_id=project["id"], max_requests_per_1_minute=42
    )
    assert updated.max_requests_per_1_minute == 42
    org.add_key(project["id"], name="made in the dashboard")
    events = list(admin.audit_logs.list())
    assert [e.type for e in events][:2] == ["api_key.created", "rate_limit.updated"]
    assert events[1].rate_limit_updated.changes_requested.max_requests_per_1_minute == 42
    assert events[0].actor.session.user.email == org.owner_email
    newest = events[0].effective_at
    assert list(admin.audit_logs.list(effective_at={"gt": newest})) == []


def test_usage_and_costs_agree_with_the_calls_served(upstream):
    org, admin, sim = upstream
    project = org.add_project("p")
    key = org.add_key(project["id"], name="app")
    app = OpenAI(api_key=key["value"], base_url=sim.base_url, max_retries=0)
    replies = [app.responses.create(model="gpt-4.1-mini", input=f"call {i}") for i in range(3)]
    app.close()
    start = day_start(datetime.now(UTC))
    usage = admin.usage.completions(
        start_time=start - 3 * 86_400, group_by=["project_id", "api_key_id", "model"], limit=7
    )
    results = [r for bucket in usage.data for r in bucket.results]
    assert len(results) == 1
    assert results[0].num_model_requests == 3
    assert results[0].input_tokens == sum(r.usage.input_tokens for r in replies)
    assert results[0].api_key_id == key["id"] and results[0].model == "gpt-4.1-mini"

    costs = admin.usage.costs(start_time=start - 3 * 86_400, group_by=["project_id"], limit=7)
    amounts = [r.amount.value for bucket in costs.data for r in bucket.results]
    expected = sum((c["cost"] for c in org.calls), Decimal(0))
    assert len(amounts) == 1 and Decimal(str(amounts[0])) == expected.normalize()
    assert expected > 0


def test_usage_pages_follow_next_page(upstream):
    org, admin, _ = upstream
    start = day_start(datetime.now(UTC))
    first = admin.usage.completions(start_time=start - 10 * 86_400, limit=4)
    assert first.has_more and len(first.data) == 4
    second = admin.usage.completions(start_time=start - 10 * 86_400, limit=4, page=first.next_page)
    assert second.data[0].start_time == first.data[-1].end_time
