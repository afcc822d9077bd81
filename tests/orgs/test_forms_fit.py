"""Forms that fit the choice: allowed models as grouped checkboxes from the catalog, the
billing timezone as a select of real zones, the audit action filter as a select of the
actions that exist, and save messages in words people read (labels, not field names)."""

from __future__ import annotations

import html
import re
import zoneinfo

import pytest
from django.urls import reverse

from orgs.audit import audit_log
from orgs.models import AuditEvent
from usage.models import CatalogModel

pytestmark = pytest.mark.django_db

SETTINGS = {
    "name": "Production",
    "environment": "production",
    "status": "active",
    "openai_project_id": "",
    "max_output_tokens": "",
    "rotation_period_days": "90",
    "request_timeout_seconds": "60",
    "connect_timeout_seconds": "5",
    "max_retries": "3",
    "circuit_breaker_enabled": "on",
}


def _settings_url(project):
    return reverse("orgs:project-settings", kwargs={"project_id": project.public_id})


def _edit_url(organization):
    return reverse("orgs:organization-edit", kwargs={"org_id": organization.public_id})


def _audit_url(organization):
    return reverse("orgs:audit-log", kwargs={"org_id": organization.public_id})


def _text(response) -> str:
    return html.unescape(response.content.decode())


# --- Allowed models -------------------------------------------------------------------


def test_allowed_models_are_checkboxes_grouped_by_catalog_category(client, project_owner, project):
    project.allowed_models = ["gpt-4.1"]
    project.save()
    client.force_login(project_owner)
    page = _text(client.get(_settings_url(project)))
    picker = page[page.index('id="allowed-models"') : page.index("</fieldset>")]
    assert "<textarea" not in page
    # One checkbox per active catalog model, ticked for the allowed one only.
    boxes = re.findall(
        r'<input type="checkbox" name="allowed_models" value="([^"]+)"([^>]*)>', picker
    )
    assert {value for value, _ in boxes} == set(
        CatalogModel.objects.filter(is_active=True).values_list("model_id", flat=True)
    )
    assert [value for value, attrs in boxes if "checked" in attrs] == ["gpt-4.1"]
    # Groups in the catalog's category order, each model under its own category.
    headings = re.findall(r"<h3>([^<]+)</h3>", picker)
    assert headings[:3] == ["Frontier reasoning", "Cost-effective reasoning", "Previous reasoning"]
    fast = picker.index("<h3>Fast, non-reasoning</h3>")
    assert picker.index('value="gpt-5.4-mini"') < fast < picker.index('value="gpt-4.1-mini"')


def test_ticked_models_are_saved_and_an_unknown_one_is_refused_naming_the_field(
    client, project_owner, project
):
    client.force_login(project_owner)
    response = client.post(
        _settings_url(project), {**SETTINGS, "allowed_models": ["gpt-5.4-mini", "gpt-4.1"]}
    )
    assert response.status_code == 302
    project.refresh_from_db()
    assert project.allowed_models == ["gpt-5.4-mini", "gpt-4.1"]
    response = client.post(
        _settings_url(project), {**SETTINGS, "allowed_models": ["gpt-4.1", "gtp-9"]}
    )
    assert response.status_code == 200
    errors = " ".join(response.context["form"].errors["allowed_models"])
    assert "Not in the model catalog: gtp-9" in errors and "Tick models from the list" in errors
    project.refresh_from_db()
    assert project.allowed_models == ["gpt-5.4-mini", "gpt-4.1"]


def test_saving_keeps_an_allowed_model_that_left_the_catalog_or_was_deactivated(
    client, project_owner, project
):
    """Neither is offered to new projects, but a project that allows one keeps it ticked
    (shown apart) until someone unticks it: saving the page changes nothing by itself."""
    CatalogModel.objects.filter(model_id="gpt-5").update(is_active=False)
    project.allowed_models = ["gpt-5", "legacy-model-x", "gpt-4.1"]
    project.save()
    client.force_login(project_owner)
    page = _text(client.get(_settings_url(project)))
    assert "gpt-5 (inactive)" in page and "<h3>Not in the catalog</h3>" in page
    form = client.get(_settings_url(project)).context["form"]
    assert sorted(form["allowed_models"].value()) == ["gpt-4.1", "gpt-5", "legacy-model-x"]
    client.post(
        _settings_url(project),
        {**SETTINGS, "allowed_models": ["gpt-5", "legacy-model-x", "gpt-4.1"]},
    )
    project.refresh_from_db()
    assert project.allowed_models == ["gpt-5", "legacy-model-x", "gpt-4.1"]
    assert not AuditEvent.objects.filter(action="project.settings_update").exists()


# --- Save messages ----------------------------------------------------------------------


def test_the_save_message_names_fields_by_their_labels(client, project_owner, project):
    client.force_login(project_owner)
    response = client.post(
        _settings_url(project),
        {**SETTINGS, "rotation_period_days": "30", "max_output_tokens": "2000"},
        follow=True,
    )
    text = _text(response)
    assert "Saved: Output-token cap, Rotation period (days)." in text
    assert "rotation_period_days" not in text and "max_output_tokens" not in text
    # Nor the form's own words (attribute values such as name="max_output_tokens" aside).
    words = re.sub(r'="[^"]*"', "", _text(client.get(_settings_url(project))))
    assert "max_output_tokens" not in words


def test_the_organization_save_message_says_what_changed(client, owner, organization):
    client.force_login(owner)
    response = client.post(
        _edit_url(organization),
        {
            "name": organization.name,
            "tier": "tier_3",
            "openai_org_id": "",
            "billing_timezone": "Europe/Paris",
        },
        follow=True,
    )
    assert "Saved: Usage tier, Billing timezone." in _text(response)


def test_a_service_refusal_on_a_post_action_names_the_field_by_its_label(
    client, owner, organization
):
    """_post_action turns a service ValidationError into a message: the form field's
    label ("Role"), not the attribute name ("role: …")."""
    client.force_login(owner)
    membership = organization.memberships.get(user=owner)
    url = reverse("orgs:organization-member-update", kwargs={"org_id": organization.public_id})
    response = client.post(url, {"membership": membership.pk, "role": "reader"}, follow=True)
    text = _text(response)
    assert "Role: An organization needs at least one owner" in text
    assert "role:" not in text


# --- Billing timezone -------------------------------------------------------------------


def test_the_billing_timezone_is_a_select_of_real_zones_common_first(client, owner, organization):
    client.force_login(owner)
    page = _text(client.get(_edit_url(organization)))
    select = page[page.index('<select name="billing_timezone"') :]
    select = select[: select.index("</select>")]
    values = re.findall(r'<option value="([^"]+)"', select)
    assert values[0] == "UTC" and values.index("Europe/Paris") < values.index("Africa/Abidjan")
    assert len(values) == len(set(values))  # each zone once
    assert set(values) == (zoneinfo.available_timezones() - {"localtime", "Factory"}) | {"UTC"}
    assert '<optgroup label="Common">' in select and '<optgroup label="All timezones">' in select
    assert re.search(r'<option value="UTC" selected>', select)


@pytest.mark.parametrize("value", ["Mars/Olympus", "utc ", "../../etc/passwd", "localtime"])
def test_an_unknown_timezone_is_refused_naming_the_field(client, owner, organization, value):
    client.force_login(owner)
    response = client.post(
        _edit_url(organization),
        {
            "name": organization.name,
            "tier": "tier_1",
            "openai_org_id": "",
            "billing_timezone": value,
        },
    )
    assert response.status_code == 200
    assert "choose one from the list" in " ".join(
        response.context["form"].errors["billing_timezone"]
    )
    organization.refresh_from_db()
    assert organization.billing_timezone == "UTC"


# --- Audit action filter ------------------------------------------------------------------


def test_the_action_filter_offers_the_actions_that_exist_and_filters_exactly(
    client, owner, organization
):
    audit_log(action="auth.login", actor=owner, organization=organization)
    audit_log(action="auth.login_failed", actor=owner, organization=organization)
    audit_log(action="key.create", actor=owner, organization=organization)
    client.force_login(owner)
    page = _text(client.get(_audit_url(organization)))
    select = page[page.index('<select name="action"') :]
    select = select[: select.index("</select>")]
    values = re.findall(r'<option value="([^"]*)"', select)
    assert values[0] == "" and "All actions" in select
    assert {"auth.login", "auth.login_failed", "key.create", "auth.", "key."} <= set(values)
    assert 'type="text" name="action"' not in page
    assert '<option value="" selected>All projects</option>' in page
    events = client.get(_audit_url(organization), {"action": "auth.login"}).context["events"]
    assert {e.action for e in events} == {"auth.login"}
    events = client.get(_audit_url(organization), {"action": "auth."}).context["events"]
    assert {e.action for e in events} == {"auth.login", "auth.login_failed"}


def test_an_action_that_does_not_exist_is_a_form_error_not_an_empty_page(
    client, owner, organization
):
    audit_log(action="key.create", actor=owner, organization=organization)
    client.force_login(owner)
    response = client.get(_audit_url(organization), {"action": "nothing.like.this"})
    assert response.status_code == 200
    assert "choose one from the list" in " ".join(response.context["form"].errors["action"])
