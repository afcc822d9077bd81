"""Members by consent: invitations by e-mail, accepted through a one-time link.

Nobody is attached to an organization without accepting; the inviter never learns
whether an address has an account; the link is single use, expires, is stored hashed.
"""

from __future__ import annotations

import datetime as dt
import html
import re

import pytest
import time_machine
from django.contrib.auth import get_user_model
from django.core import mail
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import NoReverseMatch, reverse

from orgs import services
from orgs.models import AuditEvent, Invitation, OrganizationMembership, ProjectMembership
from tests.factories import TEST_PASSWORD, ProjectFactory, UserFactory

pytestmark = pytest.mark.django_db

LINK = re.compile(r"https?://[^/\s]+(/invitations/[^/\s]+/)")


def _org_url(name: str, organization) -> str:
    return reverse(f"orgs:{name}", kwargs={"org_id": organization.public_id})


def _project_url(name: str, project) -> str:
    return reverse(f"orgs:{name}", kwargs={"project_id": project.public_id})


def _invite(client, organization, email: str, role: str = "org_reader", projects=()):
    return client.post(
        _org_url("organization-invite", organization),
        {"email": email, "role": role, "projects": [str(p.public_id) for p in projects]},
        follow=True,
    )


def _messages(response) -> list[str]:
    return [html.unescape(str(m)) for m in response.context["messages"]]


def _without_csrf(response) -> str:
    """The page without its CSRF token (masked differently on every render)."""
    return re.sub(r'"X-CSRFToken": "[^"]*"', "", response.content.decode())


def _last_link() -> str:
    """The path of the link in the last e-mail sent."""
    match = LINK.search(mail.outbox[-1].body)
    assert match, mail.outbox[-1].body
    return match.group(1)


# --- Direct attachment is gone ---------------------------------------------------------


def test_an_owner_can_no_longer_attach_an_existing_account_directly(
    client, owner, organization, project, outsider
):
    client.force_login(owner)
    for name in ("orgs:organization-member-add", "orgs:project-member-add"):
        with pytest.raises(NoReverseMatch):
            reverse(name, kwargs={"org_id": organization.public_id})
    for url in (
        f"/orgs/{organization.public_id}/members/add/",
        f"/orgs/projects/{project.public_id}/members/add/",
    ):
        assert client.post(url, {"user": "outsider", "role": "owner"}).status_code == 404
    assert not OrganizationMembership.objects.filter(
        user=outsider, organization=organization
    ).exists()
    assert not ProjectMembership.objects.filter(user=outsider).exists()


def test_inviting_says_the_same_whether_or_not_the_address_has_an_account(
    client, owner, organization, outsider
):
    client.force_login(owner)
    known = _invite(client, organization, outsider.email)
    unknown = _invite(client, organization, "nobody-here@example.com")
    assert known.status_code == unknown.status_code == 200
    assert _messages(known) == [
        m.replace("nobody-here@example.com", outsider.email) for m in _messages(unknown)
    ]
    assert "Invitation sent to" in _messages(known)[0]
    page = html.unescape(known.content.decode())
    assert "No account" not in page
    # The existing account is not attached: it has to accept first.
    assert not OrganizationMembership.objects.filter(
        user=outsider, organization=organization
    ).exists()
    assert len(mail.outbox) == 2 and mail.outbox[0].to == [outsider.email]
    # The two e-mails are the same but for the link.
    assert LINK.sub("", mail.outbox[0].body) == LINK.sub("", mail.outbox[1].body)


def test_the_token_is_stored_only_as_an_hmac(client, owner, organization):
    client.force_login(owner)
    _invite(client, organization, "new@example.com", "org_owner")
    token = _last_link().rsplit("/", 2)[1]
    invitation = Invitation.objects.get()
    assert invitation.token_digest == services.invitation_token_digest(token) != token
    assert len(invitation.token_digest) == 64 and token not in str(
        Invitation.objects.values().get()
    )
    assert token not in str(list(AuditEvent.objects.values()))
    assert invitation.expires_at - invitation.created_at == pytest.approx(
        dt.timedelta(days=7), abs=dt.timedelta(seconds=5)
    )


# --- Accepting -----------------------------------------------------------------------


def test_the_invitee_accepts_while_signed_in_with_the_invited_address(
    client, owner, organization, outsider
):
    client.force_login(owner)
    _invite(client, organization, outsider.email.upper(), "org_reader")
    link = _last_link()
    client.force_login(outsider)
    page = client.get(link)
    assert page.status_code == 200 and "Accept and join" in page.content.decode()
    assert page["Referrer-Policy"] == "no-referrer"
    response = client.post(link, {"accept": "1"}, follow=True)
    assert response.redirect_chain[-1][0] == _org_url("organization-detail", organization)
    assert (
        OrganizationMembership.objects.get(user=outsider, organization=organization).role
        == "reader"
    )
    invitation = Invitation.objects.get()
    assert invitation.accepted_by == outsider and invitation.accepted_at is not None
    actions = list(
        AuditEvent.objects.filter(organization=organization)
        .order_by("id")
        .values_list("action", flat=True)
    )
    assert actions == ["invitation.create", "membership.add", "invitation.accept"]
    # Single use: the same link is now the 404 page.
    assert client.get(link).status_code == 404
    assert client.post(link, {"accept": "1"}).status_code == 404


def test_an_existing_member_who_accepts_keeps_their_role(client, owner, reader, organization):
    client.force_login(owner)
    _invite(client, organization, reader.email, "org_owner")
    client.force_login(reader)
    response = client.post(_last_link(), {"accept": "1"}, follow=True)
    assert "role is unchanged" in _messages(response)[0]
    assert (
        OrganizationMembership.objects.get(user=reader, organization=organization).role == "reader"
    )
    assert not AuditEvent.objects.filter(action="membership.add").exists()
    assert Invitation.objects.get().accepted_by == reader


def test_another_signed_in_account_cannot_accept(client, owner, organization, outsider):
    client.force_login(owner)
    _invite(client, organization, "someone.else@example.com", "org_owner")
    link = _last_link()
    client.force_login(outsider)
    assert "not the invited one" in client.get(link).content.decode()
    response = client.post(link, {"accept": "1"})
    assert response.status_code == 400
    assert "another e-mail address" in response.content.decode()
    assert not OrganizationMembership.objects.filter(
        user=outsider, organization=organization
    ).exists()
    assert Invitation.objects.get().accepted_at is None


def test_signed_out_visitors_are_sent_to_sign_in_to_accept(client, owner, organization):
    client.force_login(owner)
    _invite(client, organization, "x@example.com")
    link = _last_link()
    client.logout()
    response = client.post(link, {"accept": "1"})
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/?next=")
    assert Invitation.objects.get().accepted_at is None


def test_an_account_is_created_from_the_link_with_the_password_validators(
    client, owner, organization, project
):
    other = ProjectFactory(organization=organization, name="Research")
    client.force_login(owner)
    _invite(
        client, organization, "new.person@example.com", "project_member", projects=[project, other]
    )
    link = _last_link()
    client.logout()
    weak = client.post(
        link,
        {"create_account": "1", "username": "newperson", "password1": "123", "password2": "123"},
    )
    assert weak.status_code == 400
    assert "too short" in html.unescape(weak.content.decode())
    assert not get_user_model().objects.filter(username="newperson").exists()
    taken = client.post(
        link,
        {
            "create_account": "1",
            "username": "owner",
            "password1": TEST_PASSWORD,
            "password2": TEST_PASSWORD,
        },
    )
    assert taken.status_code == 400 and "already exists" in html.unescape(taken.content.decode())
    response = client.post(
        link,
        {
            "create_account": "1",
            "username": "newperson",
            "password1": TEST_PASSWORD,
            "password2": TEST_PASSWORD,
        },
        follow=True,
    )
    assert response.status_code == 200
    user = get_user_model().objects.get(username="newperson")
    assert user.email == "new.person@example.com" and user.check_password(TEST_PASSWORD)
    assert response.context["user"] == user  # signed in
    assert set(
        ProjectMembership.objects.filter(user=user).values_list("project__name", "role")
    ) == {("Production", "member"), ("Research", "member")}
    assert not OrganizationMembership.objects.filter(user=user).exists()
    assert AuditEvent.objects.filter(action="auth.account_create", target_id=str(user.pk)).exists()
    client.logout()
    assert client.get(link).status_code == 404


def test_no_account_is_created_for_an_address_that_has_one(client, owner, organization, outsider):
    client.force_login(owner)
    _invite(client, organization, outsider.email)
    link = _last_link()
    client.logout()
    response = client.post(
        link,
        {
            "create_account": "1",
            "username": "second-outsider",
            "password1": TEST_PASSWORD,
            "password2": TEST_PASSWORD,
        },
    )
    assert response.status_code == 400 and "sign in with it" in response.content.decode()
    assert not get_user_model().objects.filter(username="second-outsider").exists()


def test_unknown_expired_used_and_revoked_links_get_the_same_404_page(
    client, owner, organization, outsider
):
    client.force_login(owner)
    _invite(client, organization, outsider.email)
    used = _last_link()
    _invite(client, organization, "late@example.com")
    expired = _last_link()
    _invite(client, organization, "revoked@example.com")
    revoked = _last_link()
    client.post(
        _org_url("invitation-update", organization),
        {
            "invitation": str(Invitation.objects.get(email="revoked@example.com").public_id),
            "revoke": "1",
        },
    )
    client.force_login(outsider)
    client.post(used, {"accept": "1"})
    client.logout()
    unknown = client.get("/invitations/not-a-real-token/")
    assert unknown.status_code == 404
    with time_machine.travel(dt.timedelta(days=7, minutes=1)):
        pages = {
            name: client.get(url)
            for name, url in (("used", used), ("expired", expired), ("revoked", revoked))
        }
        late = client.post(
            expired,
            {
                "create_account": "1",
                "username": "late",
                "password1": TEST_PASSWORD,
                "password2": TEST_PASSWORD,
            },
        )
    for name, page in pages.items():
        assert page.status_code == 404, name
        assert _without_csrf(page) == _without_csrf(unknown), name
    assert late.status_code == 404 and not get_user_model().objects.filter(username="late").exists()


def test_a_link_expires_after_the_setting(client, owner, organization, settings):
    settings.INVITATION_EXPIRY_DAYS = 2
    client.force_login(owner)
    _invite(client, organization, "soon@example.com")
    link = _last_link()
    client.logout()
    with time_machine.travel(dt.timedelta(days=1, hours=23)):
        assert client.get(link).status_code == 200
    with time_machine.travel(dt.timedelta(days=2, minutes=1)):
        assert client.get(link).status_code == 404


# --- Pending invitations: list, resend, revoke ------------------------------------------


def test_owners_see_pending_invitations_and_readers_do_not(client, owner, reader, organization):
    client.force_login(owner)
    _invite(client, organization, "pending.person@example.com")
    page = client.get(_org_url("organization-detail", organization)).content.decode()
    assert "pending.person@example.com" in page and "Resend" in page
    client.force_login(reader)
    page = client.get(_org_url("organization-detail", organization)).content.decode()
    assert "pending.person@example.com" not in page


def test_resend_makes_a_new_link_and_kills_the_old_one(client, owner, organization):
    client.force_login(owner)
    _invite(client, organization, "again@example.com")
    old = _last_link()
    invitation = Invitation.objects.get()
    response = client.post(
        _org_url("invitation-update", organization),
        {"invitation": str(invitation.public_id)},
        follow=True,
    )
    assert "new link" in _messages(response)[0]
    new = _last_link()
    assert new != old and len(mail.outbox) == 2
    client.logout()
    assert client.get(old).status_code == 404
    assert client.get(new).status_code == 200
    invitation.refresh_from_db()
    assert invitation.sent_count == 2
    assert (
        AuditEvent.objects.filter(action="invitation.resend", organization=organization).count()
        == 1
    )


def test_inviting_the_same_address_again_renews_instead_of_duplicating(client, owner, organization):
    client.force_login(owner)
    _invite(client, organization, "twice@example.com")
    first = _last_link()
    _invite(client, organization, "Twice@Example.com")
    assert Invitation.objects.count() == 1
    client.logout()
    assert client.get(first).status_code == 404


def test_revoke(client, owner, organization, other_organization):
    client.force_login(owner)
    _invite(client, organization, "gone@example.com")
    link = _last_link()
    invitation = Invitation.objects.get()
    client.post(
        _org_url("invitation-update", organization),
        {"invitation": str(invitation.public_id), "revoke": "1"},
    )
    invitation.refresh_from_db()
    assert invitation.revoked_at is not None
    assert AuditEvent.objects.filter(action="invitation.revoke").count() == 1
    assert client.get(link).status_code == 404
    # An invitation of another organization is not a valid choice here.
    foreign = services.invitation_create(
        organization=other_organization, email="z@example.com", role="org_reader", actor=None
    )
    client.post(
        _org_url("invitation-update", organization),
        {"invitation": str(foreign.public_id), "revoke": "1"},
    )
    foreign.refresh_from_db()
    assert foreign.revoked_at is None


def test_a_failed_send_saves_nothing_and_says_so(client, owner, organization, settings):
    settings.MAILERS = {
        "default": {
            "BACKEND": "django.core.mail.backends.smtp.EmailBackend",
            "OPTIONS": {"host": "127.0.0.1", "port": 9, "timeout": 2},
        }
    }
    client.force_login(owner)
    response = _invite(client, organization, "unlucky@example.com")
    assert "could not be sent" in _messages(response)[0]
    assert not Invitation.objects.exists()
    assert not AuditEvent.objects.filter(action__startswith="invitation.").exists()


def test_invite_form_errors_name_the_field(client, owner, organization):
    client.force_login(owner)
    assert "E-mail address" in _messages(_invite(client, organization, "not-an-address"))[0]
    assert (
        "at least one project"
        in _messages(_invite(client, organization, "a@example.com", "project_owner"))[0]
    )
    assert not Invitation.objects.exists()


# --- Who may invite ----------------------------------------------------------------------


def test_project_owners_invite_to_their_own_project_only(
    client, project_owner, organization, project, outsider
):
    other = ProjectFactory(organization=organization, name="Not mine")
    client.force_login(project_owner)
    response = client.post(
        _project_url("project-invite", project),
        {"email": outsider.email, "role": "member"},
        follow=True,
    )
    assert "Invitation sent to" in _messages(response)[0]
    invitation = Invitation.objects.get()
    assert invitation.role == "project_member" and list(invitation.projects.all()) == [project]
    assert (
        client.post(
            _project_url("project-invite", other), {"email": "a@example.com", "role": "owner"}
        ).status_code
        == 404
    )
    assert (
        client.post(
            _org_url("organization-invite", organization),
            {"email": "a@example.com", "role": "org_owner"},
        ).status_code
        == 403
    )
    assert Invitation.objects.count() == 1
    client.force_login(outsider)
    client.post(_last_link(), {"accept": "1"})
    assert ProjectMembership.objects.get(user=outsider).project == project
    assert not OrganizationMembership.objects.filter(
        user=outsider, organization=organization
    ).exists()


def test_readers_and_members_cannot_invite(client, reader, member, organization, project):
    for user in (reader, member):
        client.force_login(user)
        assert (
            client.post(
                _project_url("project-invite", project), {"email": "a@example.com", "role": "owner"}
            ).status_code
            == 403
        )
        assert (
            client.post(
                _org_url("organization-invite", organization),
                {"email": "a@example.com", "role": "org_owner"},
            ).status_code
            == 403
        )
    assert not Invitation.objects.exists()


# --- Removal asks first ------------------------------------------------------------------


def test_removing_a_member_asks_for_confirmation(
    client, owner, reader, organization, project, member
):
    client.force_login(owner)
    membership = OrganizationMembership.objects.get(user=reader)
    url = _org_url("organization-member-remove", organization)
    assert client.get(url).status_code == 405
    ask = client.post(url, {"membership": membership.pk})
    assert ask.status_code == 200 and "Remove reader from Acme?" in ask.content.decode()
    assert OrganizationMembership.objects.filter(pk=membership.pk).exists()
    client.post(url, {"membership": membership.pk, "confirm": "1"})
    assert not OrganizationMembership.objects.filter(pk=membership.pk).exists()
    assert AuditEvent.objects.filter(action="membership.remove").count() == 1
    # The old one-click removal through the update form no longer removes anyone.
    project_membership = ProjectMembership.objects.get(user=member)
    client.post(
        _project_url("project-member-update", project),
        {"membership": project_membership.pk, "remove": "1"},
    )
    assert ProjectMembership.objects.filter(pk=project_membership.pk).exists()
    project_url = _project_url("project-member-remove", project)
    assert (
        "Remove member from Production?"
        in client.post(project_url, {"membership": project_membership.pk}).content.decode()
    )
    client.post(project_url, {"membership": project_membership.pk, "confirm": "1"})
    assert not ProjectMembership.objects.filter(pk=project_membership.pk).exists()


def test_the_last_owner_cannot_be_removed(client, owner, organization):
    client.force_login(owner)
    membership = OrganizationMembership.objects.get(user=owner)
    response = client.post(
        _org_url("organization-member-remove", organization),
        {"membership": membership.pk, "confirm": "1"},
        follow=True,
    )
    assert "at least one owner" in _messages(response)[0]
    assert OrganizationMembership.objects.filter(pk=membership.pk).exists()


# --- Admin -------------------------------------------------------------------------------


def test_the_admin_never_shows_the_token_hash(client, owner, organization):
    services.invitation_create(
        organization=organization, email="adm@example.com", role="org_reader", actor=owner
    )
    invitation = Invitation.objects.get()
    admin = UserFactory(username="root", is_staff=True, is_superuser=True)
    client.force_login(admin)
    for url in (
        reverse("admin:orgs_invitation_changelist"),
        reverse("admin:orgs_invitation_change", args=[invitation.pk]),
    ):
        page = client.get(url)
        assert page.status_code == 200
        assert invitation.token_digest not in page.content.decode()
    assert client.get(reverse("admin:orgs_invitation_add")).status_code == 403
    changelist = reverse("admin:orgs_invitation_changelist")
    client.post(
        changelist,
        {"action": "delete_selected", "_selected_action": [invitation.pk], "post": "yes"},
    )
    assert Invitation.objects.filter(pk=invitation.pk).exists()
    client.post(changelist, {"action": "revoke_selected", "_selected_action": [invitation.pk]})
    invitation.refresh_from_db()
    assert invitation.revoked_at is not None
    assert AuditEvent.objects.get(action="invitation.revoke").actor == admin


def test_the_organization_page_does_not_query_per_invitation(client, owner, organization, project):
    client.force_login(owner)
    url = _org_url("organization-detail", organization)

    def queries() -> int:
        with CaptureQueriesContext(connection) as ctx:
            assert client.get(url).status_code == 200
        return len(ctx.captured_queries)

    services.invitation_create(
        organization=organization,
        email="one@example.com",
        role="project_member",
        projects=[project],
        actor=owner,
    )
    queries()  # warm: the first request of a session also remembers "no authenticator" in it
    one = queries()
    for n in range(5):
        services.invitation_create(
            organization=organization,
            email=f"more{n}@example.com",
            role="project_owner",
            projects=[project],
            actor=owner,
        )
    assert queries() == one
