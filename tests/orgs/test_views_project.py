"""Project page and its forms: settings, per-model limits, members, service accounts."""

from __future__ import annotations

import html

import pytest
from django.urls import reverse

from orgs.models import AuditEvent, OrganizationMembership, Project, ProjectMembership
from tests.factories import UserFactory, add_org_member

pytestmark = pytest.mark.django_db


def _u(name, project):
    return reverse(f"orgs:{name}", kwargs={"project_id": project.public_id})


SETTINGS = {
    "name": "Production",
    "environment": "production",
    "status": "active",
    "openai_project_id": "",
    "allowed_models": ["gpt-5.4-mini", "gpt-4.1", "gpt-5.4-mini"],
    "max_output_tokens": "2000",
    "rotation_period_days": "30",
    "request_timeout_seconds": "45",
    "connect_timeout_seconds": "5",
    "max_retries": "3",
    "circuit_breaker_enabled": "on",
}


def test_project_owner_changes_settings_and_it_is_audited(client, project_owner, project):
    client.force_login(project_owner)
    response = client.post(_u("project-settings", project), SETTINGS)
    assert response.status_code == 302
    project.refresh_from_db()
    assert project.allowed_models == ["gpt-5.4-mini", "gpt-4.1"]
    assert project.max_output_tokens == 2000 and project.rotation_period_days == 30
    event = AuditEvent.objects.get(action="project.settings_update")
    assert set(event.detail["changes"]) == {
        "allowed_models",
        "max_output_tokens",
        "rotation_period_days",
        "request_timeout_seconds",
    }
    assert event.detail["changes"]["rotation_period_days"] == [90, 30]


def test_bad_settings_name_the_field_and_change_nothing(client, owner, project):
    client.force_login(owner)
    response = client.post(
        _u("project-settings", project),
        {**SETTINGS, "allowed_models": ["gpt-5.4-mini", "gtp-9"], "rotation_period_days": "0"},
    )
    assert response.status_code == 200
    page = response.content.decode()
    assert "Not in the model catalog: gtp-9" in page
    assert "greater than or equal to 1" in page
    project.refresh_from_db()
    assert project.allowed_models == [] and project.rotation_period_days == 90
    assert not AuditEvent.objects.filter(action="project.settings_update").exists()


def test_per_model_limits(client, project_owner, project):
    client.force_login(project_owner)
    client.post(
        _u("project-limit-set", project), {"model_id": "gpt-5.4-mini", "rpm": "60", "tpm": ""}
    )
    limit = project.model_limits.get()
    assert (limit.model_id, limit.rpm, limit.tpm) == ("gpt-5.4-mini", 60, None)
    client.post(
        _u("project-limit-set", project), {"model_id": "gpt-5.4-mini", "rpm": "", "tpm": "9000"}
    )
    limit.refresh_from_db()
    assert (limit.rpm, limit.tpm) == (None, 9000)
    response = client.post(
        _u("project-limit-set", project),
        {"model_id": "gpt-5.4-mini", "rpm": "", "tpm": ""},
        follow=True,
    )
    assert "Give an RPM limit, a TPM limit or both" in response.content.decode()
    response = client.post(
        _u("project-limit-set", project), {"model_id": "nope-1", "rpm": "5"}, follow=True
    )
    assert "not in the model catalog" in response.content.decode()
    client.post(_u("project-limit-remove", project), {"limit": limit.pk})
    assert not project.model_limits.exists()
    assert list(
        AuditEvent.objects.filter(action__startswith="project.model_limit")
        .order_by("id")
        .values_list("action", flat=True)
    ) == ["project.model_limit_set", "project.model_limit_set", "project.model_limit_remove"]


def test_nobody_is_added_to_a_project_without_an_invitation(
    client, project_owner, owner, project, reader, outsider
):
    for user in (project_owner, owner):
        client.force_login(user)
        response = client.post(
            f"/orgs/projects/{project.public_id}/members/add/",
            {"user": "outsider", "role": "member"},
        )
        assert response.status_code == 404
        response = client.post(
            _u("project-invite", project), {"email": outsider.email, "role": "member"}, follow=True
        )
        assert "No account" not in html.unescape(response.content.decode())
    assert not ProjectMembership.objects.filter(user=outsider).exists()


def test_org_owner_changes_roles_and_removes_after_confirming(client, owner, project):
    newcomer = UserFactory(username="newcomer")
    membership = ProjectMembership.objects.create(user=newcomer, project=project, role="member")
    client.force_login(owner)
    client.post(
        _u("project-member-update", project), {"membership": membership.pk, "role": "owner"}
    )
    membership.refresh_from_db()
    assert membership.role == "owner"
    client.post(_u("project-member-remove", project), {"membership": membership.pk})
    assert ProjectMembership.objects.filter(pk=membership.pk).exists()
    client.post(_u("project-member-remove", project), {"membership": membership.pk, "confirm": "1"})
    assert not ProjectMembership.objects.filter(pk=membership.pk).exists()
    assert AuditEvent.objects.filter(action="membership.role_change").get().detail["to"] == "owner"


def test_service_accounts(client, project_owner, project):
    client.force_login(project_owner)
    client.post(_u("service-account-create", project), {"name": "batch", "openai_id": "user-abc"})
    response = client.post(_u("service-account-create", project), {"name": "Batch"}, follow=True)
    assert "already exists in this project" in response.content.decode()
    assert project.service_accounts.get().openai_id == "user-abc"
    assert AuditEvent.objects.filter(action="service_account.create").count() == 1


def test_org_owner_creates_a_project(client, owner, organization, project):
    client.force_login(owner)
    url = reverse("orgs:project-create", kwargs={"org_id": organization.public_id})
    response = client.post(url, {"name": "production", "environment": "production"})
    assert response.status_code == 200 and "already exists" in response.content.decode()
    response = client.post(url, {"name": "Research", "environment": "research"})
    created = Project.objects.get(name="Research")
    assert response["Location"] == _u("project-detail", created)
    assert AuditEvent.objects.get(action="project.create").project == created


def test_the_last_owner_cannot_be_demoted_or_removed(client, owner, organization):
    client.force_login(owner)
    membership = OrganizationMembership.objects.get(user=owner)
    url = reverse("orgs:organization-member-update", kwargs={"org_id": organization.public_id})
    response = client.post(url, {"membership": membership.pk, "role": "reader"}, follow=True)
    assert "at least one owner" in response.content.decode()
    client.post(url, {"membership": membership.pk, "remove": "1"})
    membership.refresh_from_db()
    assert membership.role == "owner"
    second = add_org_member(UserFactory(username="second"), organization, "owner")
    client.post(url, {"membership": second.pk, "role": "reader"})
    second.refresh_from_db()
    assert second.role == "reader"


def test_org_page_shows_tier_limits_and_spend_note(client, reader, organization, project):
    client.force_login(reader)
    page = client.get(
        reverse("orgs:organization-detail", kwargs={"org_id": organization.public_id})
    ).content.decode()
    assert "Tier 1" in page and "500 RPM" in page and "200,000 TPM" in page
    assert 'id="spend-mtd"' in page
    assert "Edit organization" not in page and "New project" not in page


def test_org_page_shows_month_to_date_spend_once_usage_exists(client, owner, organization, project):
    from platformadmin.templatetags.console_format import format_money
    from usage import services as usage_services
    from usage.selectors import organization_spend_month_to_date

    url = reverse("orgs:organization-detail", kwargs={"org_id": organization.public_id})
    client.force_login(owner)
    assert "No usage recorded this month yet." in client.get(url).content.decode()
    usage_services.usage_record_create(
        project=project,
        source="ingest",
        model="gpt-5.4-mini",
        response_id="resp_spend_1",
        usage={"input_tokens": 1_000_000, "output_tokens": 100_000, "total_tokens": 1_100_000},
    )
    spend = organization_spend_month_to_date(organization=organization)
    assert spend is not None and spend > 0
    assert (
        format_money(spend) in client.get(url).content.decode()
    )  # dollars and cents, not 10 decimals


def test_org_page_counts_unpriced_calls_instead_of_showing_zero(
    client, owner, organization, project
):
    from usage.services import usage_record_create

    url = reverse("orgs:organization-detail", kwargs={"org_id": organization.public_id})
    client.force_login(owner)
    usage_record_create(
        project=project,
        source="ingest",
        model="gpt-image-1",
        response_id="resp_unpriced_1",
        usage={"input_tokens": 1000, "output_tokens": 10, "total_tokens": 1010},
    )
    page = client.get(url).content.decode()
    assert (
        "1 unpriced call" in page and "$0.00" not in page
    )  # only unpriced calls: no dollar figure
    assert "No usage recorded this month yet." not in page
