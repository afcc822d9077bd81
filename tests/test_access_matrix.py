"""Every console URL × every role × another organization's ids: zero leaks.

URLs come from the URL resolver, not from a hand list, so a new page is swept the day
it is added. For the console namespaces (orgs, keys) every URL must be sweepable: a
URL with a parameter the sweep does not know fails the test until it is taught here.
Pages of other console apps (usage, playground) are swept too when their parameters
are known ids.

Rules checked:
- anonymous: redirected to the sign-in page, whatever the method;
- outsider (owner of another organization): 404, whatever the method;
- any role here, with the other organization's ids: 404;
- organization reader: every write is refused (403; 405 for a read-only URL) and
  nothing changes;
- project member: every write except "use" actions is refused, nothing changes;
- the organization owner is never refused (a sweep that refuses everyone proves nothing);
- no page shown to anyone here mentions the other organization's projects or keys.
"""

from __future__ import annotations

import re

import pytest
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from keys.models import APIKey
from orgs.models import (
    AuditEvent,
    Invitation,
    Organization,
    OrganizationMembership,
    ProjectMembership,
)
from orgs.services import invitation_create
from platformadmin.notifications.models import InAppMessage, Notification, NotificationChannel
from platformadmin.sync.models import SyncRun
from tests.factories import (
    TEST_PASSWORD,
    ProjectFactory,
    ServiceAccountFactory,
    UserFactory,
    add_org_member,
    add_project_member,
    fake_secret,
    make_api_key,
)
from usage.models import Budget, IngestionToken  # noqa: E402
from usage.services import ingestion_token_create, usage_record_create  # noqa: E402

pytestmark = pytest.mark.django_db

STRICT_NAMESPACES = {"orgs", "keys", "usage", "dashboard"}
OTHER_CONSOLE_NAMESPACES = {"usage", "playground"}
KNOWN_PARAMS = {"org_id", "project_id", "key_id", "token_id", "budget_id"}
# Notification pages (channels, history; the bell's own pages are PERSONAL_URLS below).
STRICT_NAMESPACES |= {"notifications"}
STRICT_NAMESPACES |= {"sync"}  # the Admin API sync (issue 13)
KNOWN_PARAMS |= {"channel_id", "notification_id"}
# The signed-in user's own pages (the bell): no object ids, 200 for anyone signed in, and
# nothing of another user reachable through them (test_personal_pages_show_only_ones_own).
PERSONAL_URLS = {
    "notifications:inbox",
    "notifications:inbox-read",
    "notifications:inbox-read-all",
    "notifications:bell",
}
# Writes a project member may make ("use the project"): everything else is refused.
USE_ACTIONS = {"keys:key-test"}
OTHER_PROJECT_NAME = "Zeta confidential project"
# Public pages reached by a one-time token (no sign-in): a bad token is a 404 for anyone.
PUBLIC_TOKEN_URLS = {"invitation-accept"}
# Console pages with no object id: not object pages, so who may not use them gets 403
# (nothing to hide), swept by test_pages_without_ids_refuse_whom_they_must.
NO_ID_URLS = {"orgs:organization-create"}
# Id-less pages any signed-in user may open: they show only what the user belongs to
# ("Usage" in the top navigation), swept by test_signed_in_pages_show_only_ones_own.
SIGNED_IN_URLS = {"dashboard:home"}


# The request log's record page names a usage record by its internal id (looked up only
# inside the organization and the viewer's projects): the sweep passes a record of each side.
KNOWN_PARAMS |= {"record_id"}
# A sync run's report page (platformadmin/sync/views_pull.py): a run of each organization.
KNOWN_PARAMS |= {"run_id"}


def _walk(patterns, namespace=None):
    for entry in patterns:
        if isinstance(entry, URLResolver):
            yield from _walk(entry.url_patterns, entry.namespace or namespace)
        elif isinstance(entry, URLPattern) and entry.name:
            yield namespace, entry.name, set(re.compile(entry.pattern.regex.pattern).groupindex)


def swept_urls() -> list[tuple[str, set[str]]]:
    found, unknown = [], []
    for namespace, name, params in _walk(get_resolver().url_patterns):
        if f"{namespace}:{name}" in NO_ID_URLS | SIGNED_IN_URLS | PERSONAL_URLS:
            continue
        if namespace in STRICT_NAMESPACES:
            if not params <= KNOWN_PARAMS or not params:
                unknown.append(f"{namespace}:{name} {sorted(params)}")
                continue
        elif namespace in OTHER_CONSOLE_NAMESPACES:
            if not params or not params <= KNOWN_PARAMS:
                continue
        else:
            continue
        found.append((f"{namespace}:{name}", params))
    assert not unknown, f"Teach the access sweep about these URLs: {unknown}"
    return sorted(found)


class World:
    """Two organizations with a project, a service account and a key each."""

    def __init__(self, organization, project, other_organization):
        self.org, self.project = organization, project
        self.key = make_api_key(project)
        self.account = ServiceAccountFactory(project=project, name="batch")
        self.other_org = other_organization
        self.other_project = ProjectFactory(
            organization=other_organization, name=OTHER_PROJECT_NAME
        )
        self.other_key = make_api_key(self.other_project, name="zeta key")
        self.other_account = ServiceAccountFactory(project=self.other_project, name="zeta-svc")
        self.token, _ = ingestion_token_create(project=project, name="sweep", actor=None)
        # The project's budget: its owner manages it, readers and members read it.
        self.budget = Budget.objects.create(organization=organization, project=project, amount=10)
        self.other_budget = Budget.objects.create(organization=other_organization, amount=10)
        self.channel = NotificationChannel.objects.create(
            organization=organization, name="Sweep bell", kind="in_app"
        )
        self.other_channel = NotificationChannel.objects.create(
            organization=other_organization, name="Zeta channel", kind="in_app"
        )
        self.notification = _sweep_notification(self.channel)
        self.other_notification = _sweep_notification(self.other_channel)
        self.other_token, _ = ingestion_token_create(
            project=self.other_project, name="zeta", actor=None
        )
        # Memberships of the other organization, to try through this one's forms.
        self.other_org_membership = add_org_member(
            UserFactory(username="zeta-reader"), other_organization, "reader"
        )
        self.other_project_membership = add_project_member(
            UserFactory(username="zeta-member"), self.other_project, "member"
        )
        self.invitation = invitation_create(
            organization=organization, email="invitee@example.com", role="org_reader", actor=None
        )
        self.other_invitation = invitation_create(
            organization=other_organization,
            email="zeta-invitee@example.com",
            role="org_reader",
            actor=None,
        )

    def record(self, *, other: bool = False):
        """A usage record of this organization's project (or of the other's), made once."""
        name = "_other_record" if other else "_record"
        if not hasattr(self, name):
            record, _ = usage_record_create(
                project=self.other_project if other else self.project,
                source="ingest",
                model="gpt-5.4-mini",
                response_id="resp_zeta_record" if other else "resp_sweep_record",
            )
            setattr(self, name, record)
        return getattr(self, name)

    def kwargs(self, params: set[str], *, other: bool = False) -> dict:
        # Both records exist before any page is swept, so a page that showed the other
        # organization's record would be caught by leaks().
        self.record(), self.record(other=True)
        if "run_id" in params:
            params = params - {"run_id"}
            run = _sweep_run(self.other_org if other else self.org, other=other)
            return {**self.kwargs(params, other=other), "run_id": run.public_id}
        if "record_id" in params:
            params = params - {"record_id"}
            return {**self.kwargs(params, other=other), "record_id": self.record(other=other).pk}
        values = {
            "org_id": (self.other_org if other else self.org).public_id,
            "project_id": (self.other_project if other else self.project).public_id,
            "key_id": (self.other_key if other else self.key).public_id,
            "token_id": (self.other_token if other else self.token).public_id,
            "budget_id": (self.other_budget if other else self.budget).public_id,
            "channel_id": (self.other_channel if other else self.channel).public_id,
            "notification_id": (self.other_notification if other else self.notification).public_id,
        }
        return {p: values[p] for p in params}

    def body(self) -> dict:
        """A POST that would change something if the access check let it through."""
        org_membership = OrganizationMembership.objects.filter(
            organization=self.org, role="reader"
        ).first()
        project_membership = ProjectMembership.objects.filter(project=self.project).first()
        return {
            "name": "Sweep",
            "environment": "development",
            "tier": "tier_2",
            "billing_timezone": "UTC",
            "status": "active",
            "rotation_period_days": "30",
            "request_timeout_seconds": "30",
            "connect_timeout_seconds": "5",
            "max_retries": "2",
            "circuit_breaker_enabled": "on",
            "kind": "project",
            "provider": "openai",
            "permissions": "restricted",
            "secret": fake_secret("proj"),
            "password": TEST_PASSWORD,
            "confirm": "on",
            "reason": "sweep",
            "user": "outsider",
            "role": "owner",
            "membership": org_membership.pk if org_membership else "",
            "project_membership": project_membership.pk if project_membership else "",
            "model_id": "gpt-5-mini",
            "rpm": "10",
            "tpm": "1000",
            "openai_id": "",
            "email": "sweep@example.com",
            "invitation": str(self.invitation.public_id),
        }

    def leaks(self, html: str) -> list[str]:
        needles = [
            "resp_zeta_record",
            OTHER_PROJECT_NAME,
            self.other_key.hint,
            str(self.other_key.public_id),
            str(self.other_project.public_id),
            str(self.other_org.public_id),
            str(self.other_budget.public_id),
            self.other_org.name,
            "zeta-svc",
            "Zeta channel",
            str(self.other_channel.public_id),
            str(self.other_notification.public_id),
            "zeta-reader",
            "zeta-member",
            "zeta-invitee",
        ]
        return [n for n in needles if n in html]


def body_of(response) -> str:
    if response.streaming:
        return b"".join(response.streaming_content).decode()
    return response.content.decode()


def state(world: World) -> tuple:
    """What a refused write must not change."""
    return (
        list(APIKey.objects.order_by("pk").values_list("pk", "status", "secret", "name", "hint")),
        list(OrganizationMembership.objects.order_by("pk").values_list("pk", "role")),
        list(ProjectMembership.objects.order_by("pk").values_list("pk", "role")),
        list(
            world.project.__class__.objects.order_by("pk").values_list(
                "pk", "name", "rotation_period_days", "max_retries", "allowed_models"
            )
        ),
        world.project.service_accounts.count(),
        world.project.model_limits.count(),
        AuditEvent.objects.exclude(action__startswith="auth.").count(),
        list(IngestionToken.objects.order_by("pk").values_list("pk", "revoked_at")),
        list(
            Budget.objects.order_by("pk").values_list(
                "pk", "amount", "thresholds", "hard_limit", "forecast_alert", "is_active"
            )
        ),
        list(
            NotificationChannel.objects.order_by("pk").values_list(
                "pk", "name", "is_active", "event_kinds", "url", "signing_secret"
            )
        ),
        Notification.objects.count(),
        list(InAppMessage.objects.order_by("pk").values_list("pk", "read_at")),
        list(
            Invitation.objects.order_by("pk").values_list(
                "pk", "token_digest", "revoked_at", "accepted_at"
            )
        ),
    )


def _sweep_notification(channel):
    return Notification.objects.create(
        organization=channel.organization,
        channel=channel,
        subject=f"channel:{channel.public_id}",
        kind="channel.test",
        period="2026-12",
        stage="sweep",
        unique_key=f"{channel.public_id}|sweep",
        title=f"Sweep message of {channel.name}",
        body="A message the sweep reads.",
    )


# Organization-wide notification pages: owners and readers only (project roles get 403).
NOTIFICATION_ORG_PAGES = {
    "notifications:channel-list",
    "notifications:channel-create",
    "notifications:channel-edit",
    "notifications:channel-delete",
    "notifications:channel-test",
    "notifications:channel-secret-rotate",
    "notifications:history",
    "notifications:notification-detail",
}


@pytest.fixture
def world(organization, project, other_organization):
    return World(organization, project, other_organization)


@pytest.fixture
def users(owner, reader, project_owner, member, outsider):
    return {
        "owner": owner,
        "reader": reader,
        "project_owner": project_owner,
        "member": member,
        "outsider": outsider,
    }


def test_the_sweep_finds_the_console_urls():
    names = {name for name, _ in swept_urls()}
    assert {
        "orgs:organization-detail",
        "orgs:project-detail",
        "orgs:audit-log",
        "keys:key-detail",
        "keys:key-reveal",
        "keys:key-rotate",
        "keys:key-revoke",
        "keys:key-create",
        "keys:rotation",
        "orgs:organization-invite",
        "orgs:project-invite",
        "orgs:invitation-update",
        "orgs:organization-member-remove",
        "orgs:project-member-remove",
    } <= names


def test_anonymous_is_sent_to_sign_in(client, world):
    for name, params in swept_urls():
        url = reverse(name, kwargs=world.kwargs(params))
        for method in ("get", "post"):
            response = getattr(client, method)(url)
            assert response.status_code == 302, (name, method, response.status_code)
            assert response["Location"].startswith("/accounts/login/"), (name, method)


def test_outsiders_get_404_everywhere(client, world, users):
    client.force_login(users["outsider"])
    before = state(world)
    for name, params in swept_urls():
        url = reverse(name, kwargs=world.kwargs(params))
        assert client.get(url).status_code == 404, (name, "get")
        assert client.post(url, world.body()).status_code == 404, (name, "post")
    assert state(world) == before


@pytest.mark.parametrize("role", ["owner", "reader", "project_owner", "member"])
def test_nobody_here_reaches_the_other_organization(client, world, users, role):
    client.force_login(users[role])
    before = state(world)
    for name, params in swept_urls():
        url = reverse(name, kwargs=world.kwargs(params, other=True))
        assert client.get(url).status_code == 404, (role, name, "get")
        assert client.post(url, world.body()).status_code == 404, (role, name, "post")
    assert state(world) == before


@pytest.mark.parametrize("role", ["reader", "member"])
def test_read_only_roles_change_nothing(client, world, users, role):
    client.force_login(users[role])
    before = state(world)
    for name, params in swept_urls():
        url = reverse(name, kwargs=world.kwargs(params))
        get = client.get(url)
        assert get.status_code in (200, 403, 405), (role, name, get.status_code)
        if get.status_code == 200:
            assert not world.leaks(body_of(get)), (role, name)
        if role == "member" and name in USE_ACTIONS:
            continue
        post = client.post(url, world.body())
        if name.split(":")[0] not in STRICT_NAMESPACES:
            # Other apps' pages: only "nothing changes" (checked at the end) is enforced.
            continue
        assert post.status_code in (403, 405), (role, name, post.status_code)
        if get.status_code == 405:  # a write-only URL refuses readers with 403, not 405
            assert post.status_code == 403, (role, name)
    assert state(world) == before


@pytest.mark.parametrize("role", ["owner", "project_owner"])
def test_managers_are_not_refused_in_their_scope_and_see_nothing_foreign(
    client, world, users, role
):
    client.force_login(users[role])
    org_level = {
        "orgs:organization-edit",
        "orgs:project-create",
        "orgs:organization-invite",
        "orgs:invitation-update",
        "orgs:organization-member-update",
        "orgs:organization-member-remove",
        "orgs:audit-log",
        "orgs:audit-export",
        *NOTIFICATION_ORG_PAGES,
        # The Admin API sync acts for the whole organization: owners only (readers read).
        *(name for name, _ in swept_urls() if name.startswith("sync:")),
    }
    for name, params in swept_urls():
        url = reverse(name, kwargs=world.kwargs(params))
        get = client.get(url)
        expected_refusal = role == "project_owner" and name in org_level
        if expected_refusal:
            assert get.status_code == 403, (role, name, get.status_code)
            assert client.post(url, world.body()).status_code == 403, (role, name)
            continue
        assert get.status_code in (200, 405), (role, name, get.status_code)
        if get.status_code == 200:
            html = body_of(get)
            assert not world.leaks(html), (role, name, world.leaks(html))
        post = client.post(url, world.body())
        assert post.status_code not in (403, 404), (role, name, post.status_code)


def test_personal_pages_show_only_ones_own(client, world, users):
    """The bell's pages (PERSONAL_URLS, no ids): anonymous visitors go to sign in; anyone
    signed in reads their own (200) and cannot read or mark another user's message, even
    by naming its notification."""
    personal = {
        f"{ns}:{name}"
        for ns, name, params in _walk(get_resolver().url_patterns)
        if f"{ns}:{name}" in PERSONAL_URLS
    }
    assert personal == PERSONAL_URLS
    zeta = OrganizationMembership.objects.get(pk=world.other_org_membership.pk).user
    theirs = InAppMessage.objects.create(notification=world.other_notification, user=zeta)
    mine = InAppMessage.objects.create(notification=world.notification, user=users["owner"])
    before = state(world)
    for name in sorted(PERSONAL_URLS):
        url = reverse(name)
        client.logout()
        for method in ("get", "post"):
            response = getattr(client, method)(url)
            assert response.status_code == 302, (name, method)
            assert response["Location"].startswith("/accounts/login/"), (name, method)
    for role, user in users.items():
        client.force_login(user)
        for name in ("notifications:inbox", "notifications:bell"):
            page = client.get(reverse(name))
            assert page.status_code == 200, (role, name)
            assert not world.leaks(body_of(page)), (role, name)
            assert client.post(reverse(name)).status_code == 405, (role, name)
        read = reverse("notifications:inbox-read")
        assert client.get(read).status_code == 405
        for notification in (world.other_notification, world.notification):
            if role == "owner" and notification == world.notification:
                continue
            response = client.post(read, {"notification": str(notification.public_id)})
            assert response.status_code == 404, (role, notification.title)
    assert state(world) == before
    client.force_login(zeta)
    client.post(reverse("notifications:inbox-read-all"))
    theirs.refresh_from_db()
    mine.refresh_from_db()
    assert theirs.read_at is not None and mine.read_at is None


def test_pages_without_ids_refuse_whom_they_must(client, world, users):
    """Every id-less console URL is listed here; anonymous visitors go to sign in, every
    role here (superusers excepted) gets 403 on GET and POST and nothing changes."""
    strict = {
        f"{ns}:{name}"
        for ns, name, params in _walk(get_resolver().url_patterns)
        if ns in STRICT_NAMESPACES and not params
    } - SIGNED_IN_URLS
    strict -= PERSONAL_URLS
    assert strict == NO_ID_URLS, f"Teach the sweep about these id-less URLs: {strict ^ NO_ID_URLS}"
    organizations = Organization.objects.count()
    before = state(world)
    for name in sorted(NO_ID_URLS):
        url = reverse(name)
        client.logout()
        for method in ("get", "post"):
            response = getattr(client, method)(url)
            assert response.status_code == 302 and response["Location"].startswith(
                "/accounts/login/"
            ), name
        for role, user in users.items():
            client.force_login(user)
            assert client.get(url).status_code == 403, (role, name, "get")
            assert client.post(url, world.body()).status_code == 403, (role, name, "post")
        client.force_login(UserFactory(username=f"root-{name.split(':')[1]}", is_superuser=True))
        assert client.get(url).status_code == 200, name
    assert state(world) == before
    assert Organization.objects.count() == organizations


def test_forms_refuse_another_organizations_rows(client, world, users):
    """Querysets of forms are scoped: ids of the other organization are invalid choices."""
    client.force_login(users["owner"])
    before = state(world)
    org_url = reverse("orgs:organization-member-update", kwargs={"org_id": world.org.public_id})
    response = client.post(org_url, {"membership": world.other_org_membership.pk, "role": "owner"})
    assert response.status_code == 302
    remove_url = reverse("orgs:organization-member-remove", kwargs={"org_id": world.org.public_id})
    assert (
        client.post(
            remove_url, {"membership": world.other_org_membership.pk, "confirm": "1"}
        ).status_code
        == 302
    )
    invitation_url = reverse("orgs:invitation-update", kwargs={"org_id": world.org.public_id})
    for extra in ({}, {"revoke": "1"}):
        response = client.post(
            invitation_url, {"invitation": str(world.other_invitation.public_id), **extra}
        )
        assert response.status_code == 302
    proj_url = reverse("orgs:project-member-update", kwargs={"project_id": world.project.public_id})
    client.post(proj_url, {"membership": world.other_project_membership.pk, "role": "owner"})
    key_url = reverse("keys:key-create", kwargs={"project_id": world.project.public_id})
    page = client.post(
        key_url,
        {
            **world.body(),
            "kind": "service_account",
            "secret": fake_secret("svcacct"),
            "service_account": str(world.other_account.public_id),
        },
    )
    assert page.status_code == 400
    assert state(world) == before
    assert OrganizationMembership.objects.filter(pk=world.other_org_membership.pk).exists()
    assert ProjectMembership.objects.get(pk=world.other_project_membership.pk).role == "member"


def test_home_lists_only_what_the_user_belongs_to(client, world, users):
    for role in ("owner", "reader", "project_owner", "member"):
        client.force_login(users[role])
        page = client.get(reverse("home")).content.decode()
        assert world.project.name in page
        assert not world.leaks(page), role
    client.force_login(users["outsider"])
    page = client.get(reverse("home")).content.decode()
    assert world.org.name not in page and world.project.name not in page


def test_public_token_pages_are_known_and_answer_bad_tokens_alike(client, world, users):
    """Token pages are outside the sweep (no sign-in, no ids): each is listed here, and an
    unknown token (or the stored digest passed as a token) is the same 404 for anonymous
    visitors and every role, and changes nothing. Used, expired and revoked links:
    tests/orgs/test_invitations.py."""
    public = {
        name
        for namespace, name, params in _walk(get_resolver().url_patterns)
        if namespace is None and params == {"token"}
    }
    assert public == PUBLIC_TOKEN_URLS, (
        f"Teach the sweep about these token pages: {public ^ PUBLIC_TOKEN_URLS}"
    )
    bad_tokens = ["unknown-token", "x" * 300, world.invitation.token_digest]
    before = state(world)
    for name in sorted(PUBLIC_TOKEN_URLS):
        for role in (None, *users):
            client.logout()
            if role:
                client.force_login(users[role])
            for token in bad_tokens:
                url = reverse(name, kwargs={"token": token})
                assert client.get(url).status_code == 404, (name, role, token)
                assert (
                    client.post(
                        url, {**world.body(), "accept": "1", "create_account": "1"}
                    ).status_code
                    == 404
                )
    assert state(world) == before


def test_signed_in_pages_show_only_ones_own(client, world, users):
    """Id-less pages open to anyone signed in: anonymous visitors go to sign in; every
    role gets its own organization (a page or a redirect into it), never the other's."""
    for name in sorted(SIGNED_IN_URLS):
        url = reverse(name)
        client.logout()
        response = client.get(url)
        assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")
        for role, user in users.items():
            client.force_login(user)
            response = client.get(url, follow=True)
            assert response.status_code == 200, (role, name)
            html = body_of(response)
            if role == "outsider":  # the owner of the other organization sees only it
                assert str(world.org.public_id) not in html, (role, name)
            else:
                assert not world.leaks(html), (role, name, world.leaks(html))
            assert client.post(url).status_code == 405, (role, name)


def _sweep_run(organization, *, other: bool = False) -> SyncRun:
    """A hierarchy sync run of either organization; the other's report names the other
    project, so a page that showed it would be caught by ``World.leaks``."""
    run = SyncRun.objects.filter(organization=organization).first()
    return run or SyncRun.objects.create(
        organization=organization,
        kind=SyncRun.Kind.HIERARCHY,
        status=SyncRun.Status.SUCCEEDED,
        started_at=organization.created_at,
        report={"details": [f"Project {OTHER_PROJECT_NAME}: imported."] if other else []},
    )
