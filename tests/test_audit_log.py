"""The audit log: what is recorded, the filterable page, CSV export, append-only."""

from __future__ import annotations

import csv
import datetime as dt
import io
import re

import pytest
import time_machine
from django.core import mail
from django.urls import reverse
from django.utils import timezone

from keys import services as key_services
from orgs import services
from orgs.audit import audit_log
from orgs.models import AuditEvent
from tests.factories import UserFactory, add_org_member, add_project_member

pytestmark = pytest.mark.django_db


def _page(org):
    return reverse("orgs:audit-log", kwargs={"org_id": org.public_id})


def _events(response) -> str:
    """The events table only (the filter form lists every action name too)."""
    return response.content.decode().split('<div id="events">', 1)[1]


def _csv(org):
    return reverse("orgs:audit-export", kwargs={"org_id": org.public_id})


def test_membership_and_settings_changes_are_recorded(client, owner, organization, project):
    newcomer = UserFactory(username="newcomer")
    client.force_login(owner)
    org_id = organization.public_id
    client.post(
        reverse("orgs:organization-invite", kwargs={"org_id": org_id}),
        {"email": newcomer.email, "role": "org_reader"},
        REMOTE_ADDR="198.51.100.20",
    )
    link = re.search(r"(/invitations/[^/\s]+/)", mail.outbox[-1].body).group(1)
    client.force_login(newcomer)
    client.post(link, {"accept": "1"}, REMOTE_ADDR="203.0.113.9")
    membership = newcomer.organization_memberships.get()
    client.force_login(owner)
    client.post(
        reverse("orgs:organization-member-update", kwargs={"org_id": org_id}),
        {"membership": membership.pk, "role": "owner"},
    )
    client.post(
        reverse("orgs:organization-member-remove", kwargs={"org_id": org_id}),
        {"membership": membership.pk, "confirm": "1"},
    )
    client.post(
        reverse("orgs:organization-edit", kwargs={"org_id": org_id}),
        {"name": "Acme", "tier": "tier_3", "openai_org_id": "", "billing_timezone": "Europe/Paris"},
    )
    events = AuditEvent.objects.exclude(action__startswith="auth.").order_by("id")
    actions = [e.action for e in events]
    assert actions == [
        "invitation.create",
        "membership.add",
        "invitation.accept",
        "membership.role_change",
        "membership.remove",
        "organization.update",
    ]
    invite, add, accept, change, remove, update = events
    assert (
        invite.ip_address == "198.51.100.20"
        and invite.actor == owner
        and invite.detail["role"] == "org_reader"
    )
    assert invite.detail["email"] == newcomer.email
    assert (
        add.actor == newcomer and add.detail["role"] == "reader" and add.ip_address == "203.0.113.9"
    )
    assert accept.actor == newcomer
    assert change.detail["from"] == "reader" and change.detail["to"] == "owner"
    assert update.detail["changes"]["tier"] == ["tier_1", "tier_3"]
    assert update.occurred_at.tzinfo is not None and update.occurred_at.utcoffset() == dt.timedelta(
        0
    )


def test_the_page_filters_by_action_actor_project_and_date(
    client, owner, reader, organization, project
):
    with time_machine.travel(dt.datetime(2026, 1, 10, 12, tzinfo=dt.UTC), tick=False):
        services.project_update_settings(project=project, actor=owner, max_retries=5)
    with time_machine.travel(dt.datetime(2026, 2, 10, 12, tzinfo=dt.UTC), tick=False):
        audit_log(
            action="key.reveal",
            actor=reader,
            organization=organization,
            detail={"hint": "sk-…abcd"},
        )
    client.force_login(reader)
    page = _events(client.get(_page(organization)))
    assert "project.settings_update" in page and "key.reveal" in page
    page = _events(client.get(_page(organization), {"action": "key."}))
    assert "key.reveal" in page and "project.settings_update" not in page
    page = _events(client.get(_page(organization), {"actor": "own"}))
    assert "project.settings_update" in page and "key.reveal" not in page
    page = _events(client.get(_page(organization), {"since": "2026-02-01"}))
    assert "key.reveal" in page and "project.settings_update" not in page
    page = _events(client.get(_page(organization), {"project": str(project.public_id)}))
    assert "project.settings_update" in page and "key.reveal" not in page
    # With HTMX, only the table comes back.
    fragment = client.get(
        _page(organization), {"action": "key."}, HTTP_HX_REQUEST="true"
    ).content.decode()
    assert fragment.lstrip().startswith('<div id="events">') and "key.reveal" in fragment
    bad = client.get(_page(organization), {"since": "2026-03-01", "until": "2026-02-01"})
    assert "end date is before the start date" in bad.content.decode()


def test_sign_ins_of_members_appear_and_others_do_not(client, owner, organization, outsider):
    client.post("/accounts/login/", {"username": "owner", "password": "wrong"})
    client.post("/accounts/login/", {"username": "outsider", "password": "wrong"})
    client.force_login(owner)
    events = _events(client.get(_page(organization)))
    assert "auth.login_failed" in events
    assert "outsider" not in events


def test_a_members_history_from_before_they_joined_is_not_shown(
    client, owner, organization, outsider
):
    """Sign-ins (and failed ones) of a member appear only from the moment they joined:
    not their history from before, made for another tenant."""
    with time_machine.travel(dt.datetime(2026, 3, 1, 9, tzinfo=dt.UTC), tick=False):
        client.force_login(outsider)  # signs in to work in their own organization
        client.post(
            "/accounts/login/",
            {"username": "outsider", "password": "wrong"},
            REMOTE_ADDR="192.0.2.77",
        )
        audit_log(
            action="auth.login",
            actor=outsider,
            target=outsider,
            detail={"marker": "before-joining"},
        )
    with time_machine.travel(dt.datetime(2026, 4, 1, 9, tzinfo=dt.UTC), tick=False):
        add_org_member(outsider, organization, "reader")
    with time_machine.travel(dt.datetime(2026, 4, 2, 9, tzinfo=dt.UTC), tick=False):
        audit_log(
            action="auth.login", actor=outsider, target=outsider, detail={"marker": "after-joining"}
        )
        client.post(
            "/accounts/login/",
            {"username": "outsider", "password": "wrong"},
            REMOTE_ADDR="192.0.2.88",
        )
    client.force_login(owner)
    events = _events(client.get(_page(organization)))
    assert "after-joining" in events and "192.0.2.88" in events
    assert "before-joining" not in events and "192.0.2.77" not in events
    rows = list(
        csv.reader(io.StringIO(b"".join(client.get(_csv(organization)).streaming_content).decode()))
    )
    outsider_rows = [r for r in rows[1:] if "outsider" in (r[1], r[5]) or "outsider" in r[8]]
    assert outsider_rows and all(r[0] >= "2026-04-01" for r in outsider_rows)


def test_a_project_members_history_starts_at_their_first_membership(
    client, owner, organization, project
):
    user = UserFactory(username="late-joiner")
    with time_machine.travel(dt.datetime(2026, 3, 1, 9, tzinfo=dt.UTC), tick=False):
        audit_log(action="auth.login", actor=user, target=user, detail={"marker": "before-joining"})
    with time_machine.travel(dt.datetime(2026, 4, 1, 9, tzinfo=dt.UTC), tick=False):
        add_project_member(user, project, "member")
        audit_log(action="auth.login", actor=user, target=user, detail={"marker": "after-joining"})
    client.force_login(owner)
    events = _events(client.get(_page(organization)))
    assert "after-joining" in events and "before-joining" not in events


def test_csv_export(client, owner, organization, api_key):
    api_key.name = "=HYPERLINK(1)"
    api_key.save()
    key_services.api_key_revoke(api_key=api_key, actor=owner, reason="compromised")
    client.force_login(owner)
    response = client.get(_csv(organization), {"action": "key."})
    assert response["Content-Type"].startswith("text/csv")
    assert "attachment" in response["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert rows[0][:3] == ["occurred_at_utc", "actor", "action"]
    assert len(rows) == 2 and rows[1][1:3] == ["owner", "key.revoke"]
    assert rows[1][0].endswith("+00:00")
    assert api_key.hint in rows[1][8]
    assert rows[1][5].startswith("'=HYPERLINK")  # no formula when opened in a spreadsheet


def test_project_members_cannot_read_the_organizations_log(
    client, member, project_owner, organization
):
    for user in (member, project_owner):
        client.force_login(user)
        assert client.get(_page(organization)).status_code == 403
        assert client.get(_csv(organization)).status_code == 403


def test_events_cannot_be_changed_or_deleted(owner, organization):
    event = audit_log(action="key.reveal", actor=owner, organization=organization)
    event.action = "nothing.happened"
    with pytest.raises(PermissionError):
        event.save()
    with pytest.raises(PermissionError):
        event.delete()
    with pytest.raises(PermissionError):
        AuditEvent.objects.filter(pk=event.pk).update(action="x")
    with pytest.raises(PermissionError):
        AuditEvent.objects.all().delete()
    assert AuditEvent.objects.get(pk=event.pk).action == "key.reveal"


def test_the_django_admin_cannot_change_or_delete_events(client, owner, organization):
    admin = UserFactory(username="root", is_staff=True, is_superuser=True)
    add_org_member(admin, organization, "owner")
    event = audit_log(action="key.reveal", actor=owner, organization=organization)
    client.force_login(admin)
    change_url = reverse("admin:orgs_auditevent_change", args=[event.pk])
    page = client.get(change_url)
    assert page.status_code == 200 and b'name="_save"' not in page.content
    assert client.post(change_url, {"action": "edited"}).status_code == 403
    assert (
        client.post(
            reverse("admin:orgs_auditevent_delete", args=[event.pk]), {"post": "yes"}
        ).status_code
        == 403
    )
    assert client.get(reverse("admin:orgs_auditevent_add")).status_code == 403
    changelist = client.post(
        reverse("admin:orgs_auditevent_changelist"),
        {"action": "delete_selected", "_selected_action": [event.pk], "post": "yes"},
    )
    assert changelist.status_code in (200, 302, 403)
    assert AuditEvent.objects.filter(pk=event.pk, action="key.reveal").exists()


def test_rows_stored_before_shape_redaction_are_redacted_when_read(client, reader, organization):
    """An event written by an older release holds an Azure key in clear (append-only, so
    it can never be cleaned): the page and the CSV redact it as they read it."""
    azure = "0123456789abcdef0123456789abcdef"
    AuditEvent.objects.create(  # bypasses audit_log's redaction, as the old code did
        organization=organization,
        action="key.test",
        actor_label="someone",
        occurred_at=timezone.now(),
        target_type="api_key",
        target_id="x",
        target_label=f"key {azure}",
        detail={"message": f"Error code: 401 - Incorrect API key provided: {azure}"},
    )
    client.force_login(reader)
    page = client.get(_page(organization)).content.decode()
    export = b"".join(client.get(_csv(organization)).streaming_content).decode()
    assert "Incorrect API key provided" in page and "Incorrect API key provided" in export
    assert azure not in page
    assert azure not in export
