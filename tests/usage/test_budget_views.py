"""Budget pages: list, create, edit, detail (usage/budget_views.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.urls import reverse

from orgs.models import AuditEvent
from platformadmin.notifications.models import Notification
from tests.factories import ProjectFactory
from tests.usage.test_budgets import spend
from usage.budget_forms import parse_amount, parse_thresholds
from usage.budgets import budget_evaluate
from usage.models import Budget

pytestmark = pytest.mark.django_db


def list_url(organization) -> str:
    return reverse("usage:budget-list", kwargs={"org_id": organization.public_id})


def create_url(organization) -> str:
    return reverse("usage:budget-create", kwargs={"org_id": organization.public_id})


def form(**overrides) -> dict:
    return {
        "scope": "organization",
        "amount": "500",
        "thresholds": "50, 80, 100",
        "forecast_alert": "on",
        **overrides,
    }


@pytest.fixture
def both(organization, project):
    return (
        Budget.objects.create(organization=organization, amount=Decimal(1000)),
        Budget.objects.create(organization=organization, project=project, amount=Decimal(50)),
    )


# --- The form's rules ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "amount"),
    [("500", "500.00"), ("1250.5", "1250.50"), ("$1,250.50", "1250.50"), (" 0.01 ", "0.01")],
)
def test_amounts_people_type(raw, amount):
    assert parse_amount(raw) == Decimal(amount)


@pytest.mark.parametrize(
    ("raw", "says"),
    [
        ("", "Enter the monthly amount"),
        ("-5", "not an amount of dollars"),
        ("abc", "not an amount of dollars"),
        ("1,5", "not an amount of dollars"),
        ("1e9", "not an amount of dollars"),
        ("NaN", "not an amount of dollars"),
        ("0", "more than $0"),
        ("0.00", "more than $0"),
        ("1.234", "at most 2 decimals"),
        ("100000000.01", "at most $100,000,000"),
        ("9" * 30, "at most $100,000,000"),
    ],
)
def test_bad_amounts_are_refused_with_the_fix(raw, says):
    with pytest.raises(ValueError, match=None) as exc:
        parse_amount(raw)
    assert says in str(exc.value)


def test_thresholds_are_deduplicated_and_sorted():
    assert parse_thresholds("100, 50,50 80%") == [50, 80, 100]
    assert parse_thresholds("1000; 1") == [1, 1000]


@pytest.mark.parametrize(
    ("raw", "says"),
    [
        ("", "at least one"),
        ("0", "out of range"),
        ("1001", "out of range"),
        ("50, eighty", "not a whole percentage"),
        ("12.5", "not a whole percentage"),
        ("-5", "not a whole percentage"),
        (", ".join(str(i) for i in range(1, 12)), "At most 10"),
    ],
)
def test_bad_thresholds_are_refused_with_the_fix(raw, says):
    with pytest.raises(ValueError) as exc:
        parse_thresholds(raw)
    assert says in str(exc.value)


# --- List ---------------------------------------------------------------------------------


def test_the_list_shows_spend_forecast_reserved_and_state(client, owner, both, project):
    spend(project, 45, datetime.now(UTC) - timedelta(minutes=30), rid="a")
    spend(project, 1, datetime.now(UTC) - timedelta(minutes=30), rid="u", model="my-own-model")
    client.force_login(owner)
    page = client.get(list_url(project.organization))
    assert page.status_code == 200
    html = page.content.decode()
    row = html[html.index(f'id="budget-{both[1].public_id}"') :]
    assert "$45.00" in row and "+ 1 unpriced call" in row and "$50.00" in row
    assert 'data-state="warning"' in row and "90.0%" in row
    assert "Whole organization" in html and "New budget" in html


def test_a_project_member_sees_only_the_project_budget(client, member, both):
    client.force_login(member)
    html = client.get(list_url(both[0].organization)).content.decode()
    assert str(both[1].public_id) in html
    assert str(both[0].public_id) not in html and "Whole organization" not in html
    assert "New budget" not in html
    detail = reverse("usage:budget-detail", kwargs={"budget_id": both[0].public_id})
    assert client.get(detail).status_code == 404  # the organization's spend is not theirs


def test_outsiders_get_404_and_readers_cannot_create(client, outsider, reader, both):
    organization = both[0].organization
    client.force_login(outsider)
    assert client.get(list_url(organization)).status_code == 404
    assert client.get(create_url(organization)).status_code == 404
    client.force_login(reader)
    assert client.get(list_url(organization)).status_code == 200
    assert client.get(create_url(organization)).status_code == 403
    assert client.post(create_url(organization), form()).status_code == 403


def test_the_list_costs_the_same_queries_for_two_budgets_or_six(
    client, owner, organization, project, django_assert_max_num_queries
):
    Budget.objects.create(organization=organization, amount=Decimal(1000))
    Budget.objects.create(organization=organization, project=project, amount=Decimal(50))
    # Usage already (a project new in the forecast window: its first hour is one more read,
    # once per organization, however many projects are new).
    spend(project, 1, datetime.now(UTC) - timedelta(hours=3), rid="first")
    client.force_login(owner)
    client.get(list_url(organization))  # warm the session
    with django_assert_max_num_queries(20) as few:
        assert client.get(list_url(organization)).status_code == 200
    for i in range(4):
        p = ProjectFactory(organization=organization, name=f"Extra {i}")
        Budget.objects.create(organization=organization, project=p, amount=Decimal(5))
        spend(p, 1, datetime.now(UTC) - timedelta(hours=2), rid=f"x{i}")
    with django_assert_max_num_queries(len(few.captured_queries)):
        assert client.get(list_url(organization)).status_code == 200


# --- Create --------------------------------------------------------------------------------


def test_an_owner_creates_the_organization_budget(client, owner, organization):
    client.force_login(owner)
    response = client.post(create_url(organization), form(thresholds="100, 50, 50", amount="$750"))
    budget = Budget.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse(
        "usage:budget-detail", kwargs={"budget_id": budget.public_id}
    )
    assert (budget.project, budget.amount, budget.thresholds) == (None, Decimal(750), [50, 100])
    assert budget.forecast_alert and not budget.hard_limit
    event = AuditEvent.objects.get(action="budget.create")
    assert event.detail["amount"] == "750.00" and event.actor == owner


def test_bad_input_is_a_400_naming_the_field(client, owner, organization):
    client.force_login(owner)
    response = client.post(create_url(organization), form(amount="1.999", thresholds="0, 50"))
    assert response.status_code == 400
    html = response.content.decode()
    assert "Use at most 2 decimals" in html and "0% is out of range" in html
    assert not Budget.objects.exists()


def test_a_project_owner_creates_only_their_projects_budget(
    client, project_owner, organization, project
):
    client.force_login(project_owner)
    page = client.get(create_url(organization)).content.decode()
    assert "The whole organization (" not in page and f"Project {project.name}" in page
    refused = client.post(create_url(organization), form(scope="organization"))
    assert refused.status_code == 400 and "Select a valid choice" in refused.content.decode()
    other = ProjectFactory(organization=organization, name="Not theirs")
    refused = client.post(create_url(organization), form(scope=str(other.public_id)))
    assert refused.status_code == 400
    ok = client.post(create_url(organization), form(scope=str(project.public_id), hard_limit="on"))
    assert ok.status_code == 302
    budget = Budget.objects.get()
    assert budget.project == project and budget.hard_limit
    # The project has its budget now: it is no longer offered.
    page = client.get(create_url(organization)).content.decode()
    assert "already has a budget" in page
    assert (
        client.post(create_url(organization), form(scope=str(project.public_id))).status_code == 400
    )
    assert Budget.objects.count() == 1


def test_members_cannot_create(client, member, organization):
    client.force_login(member)
    assert client.get(create_url(organization)).status_code == 403


# --- Edit ----------------------------------------------------------------------------------


def test_a_project_owner_edits_the_budget_and_it_is_audited(client, project_owner, both):
    budget = both[1]
    url = reverse("usage:budget-edit", kwargs={"budget_id": budget.public_id})
    client.force_login(project_owner)
    page = client.get(url)
    assert page.status_code == 200 and 'value="50.00"' in page.content.decode()
    response = client.post(
        url, {"amount": "80", "thresholds": "75", "is_active": "on", "forecast_alert": "on"}
    )
    assert response.status_code == 302
    budget.refresh_from_db()
    assert (budget.amount, budget.thresholds) == (Decimal(80), [75])
    event = AuditEvent.objects.get(action="budget.update")
    assert event.detail["amount"] == {"from": "50.0000000000", "to": "80.00"}
    assert set(event.detail) == {"amount", "thresholds"}
    # The same values again: nothing changes, nothing is audited.
    client.post(
        url, {"amount": "80", "thresholds": "75", "is_active": "on", "forecast_alert": "on"}
    )
    assert AuditEvent.objects.filter(action="budget.update").count() == 1


def test_edit_refuses_readers_members_and_project_owners_on_the_org_budget(
    client, reader, member, project_owner, both
):
    org_edit = reverse("usage:budget-edit", kwargs={"budget_id": both[0].public_id})
    project_edit = reverse("usage:budget-edit", kwargs={"budget_id": both[1].public_id})
    for user, url, code in (
        (reader, org_edit, 403),
        (reader, project_edit, 403),
        (member, project_edit, 403),
        (member, org_edit, 404),
        (project_owner, org_edit, 404),
    ):
        client.force_login(user)
        assert client.get(url).status_code == code, (user, url)
        assert client.post(url, {"amount": "1", "thresholds": "10"}).status_code == code
    assert Budget.objects.get(pk=both[0].pk).amount == Decimal(1000)


def test_edit_refuses_bad_input_naming_the_field(client, owner, both):
    url = reverse("usage:budget-edit", kwargs={"budget_id": both[0].public_id})
    client.force_login(owner)
    response = client.post(url, {"amount": "-1", "thresholds": "50"})
    assert response.status_code == 400
    assert "Monthly amount (USD)" in response.content.decode()
    assert "not an amount of dollars" in response.content.decode()


# --- Detail --------------------------------------------------------------------------------


def test_the_detail_shows_the_alerts_and_their_notifications(client, member, both, project):
    budget = both[1]
    now = datetime.now(UTC)
    spend(project, 41, now - timedelta(minutes=20), rid="a")
    budget_evaluate(budget_id=budget.pk, now=now)
    assert Notification.objects.filter(subject=f"budget:{budget.public_id}").count() == 4
    client.force_login(member)
    url = reverse("usage:budget-detail", kwargs={"budget_id": budget.public_id})
    html = client.get(url).content.decode()
    assert "50 % reached" in html and "80 % reached" in html
    assert "Console bell: Pending" in html and "Owners by e-mail: Pending" in html
    assert "$41.00" in html and "Edit" not in html.split("<h2")[0]
    assert client.post(url).status_code == 405
