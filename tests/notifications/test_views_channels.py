"""The channels page: owners add, edit, test and delete channels; readers see the list;
URLs and signing secrets never appear in clear after the one-time display."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from keys.fields import unseal
from orgs.models import AuditEvent
from platformadmin.notifications.models import Notification, NotificationChannel
from tests.notifications.test_views import make_channel, make_notification

pytestmark = pytest.mark.django_db

HOOK_URL = "https://hooks.example.com/services/T000/B000/very-secret-path-token"
SLACK_URL = "https://hooks.slack.com/services/T0AAA/B0BBB/slack-secret-token-123"


def list_url(organization) -> str:
    return reverse("notifications:channel-list", kwargs={"org_id": organization.public_id})


def create_url(organization, kind: str = "") -> str:
    url = reverse("notifications:channel-create", kwargs={"org_id": organization.public_id})
    return f"{url}?kind={kind}" if kind else url


def channel_url(name: str, channel) -> str:
    return reverse(f"notifications:channel-{name}", kwargs={"channel_id": channel.public_id})


def test_readers_see_the_list_without_controls_or_secrets(client, reader, organization):
    channel = make_channel(
        organization, name="Ops hook", kind="webhook", url_hint="https://hooks.example.com"
    )
    client.force_login(reader)
    page = client.get(list_url(organization))
    assert page.status_code == 200
    html = page.content.decode()
    assert "Ops hook" in html and "https://hooks.example.com" in html
    assert channel_url("edit", channel) not in html and "Send test" not in html
    assert client.get(create_url(organization, "email")).status_code == 403
    assert client.post(channel_url("test", channel)).status_code == 403
    assert (
        client.post(channel_url("delete", channel), {"confirm": channel.public_id}).status_code
        == 403
    )
    assert NotificationChannel.objects.filter(pk=channel.pk).exists()


def test_project_members_are_refused_and_outsiders_see_nothing(
    client, member, project_owner, outsider, organization
):
    channel = make_channel(organization, name="Bell")
    for user in (member, project_owner):
        client.force_login(user)
        assert client.get(list_url(organization)).status_code == 403
        assert client.get(channel_url("edit", channel)).status_code == 403
    client.force_login(outsider)
    assert client.get(list_url(organization)).status_code == 404
    for name in ("edit", "delete", "test", "secret-rotate"):
        assert client.post(channel_url(name, channel)).status_code == 404, name


def test_an_owner_adds_a_webhook_and_sees_its_secret_once(client, owner, organization):
    client.force_login(owner)
    assert client.get(create_url(organization)).status_code == 200  # the kind choice
    form = client.get(create_url(organization, "webhook"))
    assert form.status_code == 200 and 'type="password"' in form.content.decode()
    response = client.post(
        create_url(organization),
        {
            "kind": "webhook",
            "name": "Ops hook",
            "url": HOOK_URL,
            "is_active": "on",
            "event_kinds": ["budget.threshold"],
        },
    )
    assert response.status_code == 200
    assert (
        response["Cache-Control"].startswith("max-age=0") or "no-store" in response["Cache-Control"]
    )
    channel = NotificationChannel.objects.get(name="Ops hook")
    secret = unseal(channel, "signing_secret")
    html = response.content.decode()
    assert secret in html and HOOK_URL not in html
    assert (
        channel.event_kinds == ["budget.threshold"]
        and channel.url_hint == "https://hooks.example.com"
    )
    # Afterwards: the hint only, never the URL or the secret.
    listing = client.get(list_url(organization)).content.decode()
    edit = client.get(channel_url("edit", channel)).content.decode()
    for html in (listing, edit):
        assert secret not in html and HOOK_URL not in html and "very-secret-path-token" not in html
        assert "https://hooks.example.com" in html
    assert AuditEvent.objects.filter(action="notification_channel.create").count() == 1
    audit = AuditEvent.objects.get(action="notification_channel.create")
    assert "very-secret-path-token" not in str(audit.detail) and secret not in str(audit.detail)


def test_each_kind_has_its_form(client, owner, organization):
    client.force_login(owner)
    cases = {
        "email": ({"email_recipients": "oncall@example.com\nfinance@example.com"}, "Extra e-mail"),
        "slack": ({"url": SLACK_URL}, "incoming-webhook URL"),
        "apprise": ({"url": "discord://1234567890/abcdefghij"}, "apprise service URL"),
        "in_app": ({}, "Events"),
    }
    for kind, (fields, label) in cases.items():
        assert label in client.get(create_url(organization, kind)).content.decode(), kind
        response = client.post(
            create_url(organization),
            {"kind": kind, "name": f"{kind} channel", "is_active": "on", **fields},
        )
        assert response.status_code == 302, (kind, response.content.decode()[-2000:])
        channel = NotificationChannel.objects.get(name=f"{kind} channel")
        assert channel.kind == kind
    assert NotificationChannel.objects.get(kind="email").email_recipients.splitlines() == [
        "oncall@example.com",
        "finance@example.com",
    ]
    assert "slack-secret-token" not in client.get(list_url(organization)).content.decode()


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"kind": "webhook", "name": "x", "url": ""}, "This field is required"),
        ({"kind": "webhook", "name": "x", "url": "http://hooks.example.com/x"}, "https://"),
        ({"kind": "webhook", "name": "x", "url": "https://127.0.0.1:9/hook"}, "not accepted"),
        ({"kind": "webhook", "name": "x", "url": "https://169.254.169.254/latest"}, "not accepted"),
        (
            {"kind": "webhook", "name": "x", "url": "https://u:p@hooks.example.com/x"},
            "user or password",
        ),
        (
            {"kind": "email", "name": "x", "email_recipients": "not an address"},
            "Not an e-mail address",
        ),
        ({"kind": "in_app", "name": ""}, "This field is required"),
        ({"kind": "in_app", "name": "x", "event_kinds": ["rm -rf"]}, "not one of the available"),
        ({"kind": "carrier-pigeon", "name": "x"}, "Unknown kind of channel"),
    ],
)
def test_bad_input_is_a_400_naming_the_field(client, owner, organization, fields, message):
    client.force_login(owner)
    response = client.post(create_url(organization), fields)
    assert response.status_code == 400
    html = response.content.decode()
    assert message in html, html[-3000:]
    assert "169.254.169.254/latest" not in html and "u:p@" not in html  # never quoted back
    assert not NotificationChannel.objects.exists()


def test_a_duplicate_name_is_refused_by_name(client, owner, organization):
    make_channel(organization, name="Bell")
    client.force_login(owner)
    response = client.post(create_url(organization), {"kind": "in_app", "name": "Bell"})
    assert response.status_code == 400
    assert "This organization already has a channel" in response.content.decode()


def test_edit_keeps_the_url_when_left_empty_and_audits(client, owner, organization):
    client.force_login(owner)
    client.post(
        create_url(organization),
        {"kind": "slack", "name": "Slack", "url": SLACK_URL, "is_active": "on"},
    )
    channel = NotificationChannel.objects.get(name="Slack")
    response = client.post(
        channel_url("edit", channel), {"name": "Slack ops", "url": "", "is_active": ""}
    )
    assert response.status_code == 302
    channel.refresh_from_db()
    assert channel.name == "Slack ops" and not channel.is_active
    assert unseal(channel, "url") == SLACK_URL
    assert AuditEvent.objects.filter(action="notification_channel.update").count() == 1
    page = client.get(list_url(organization)).content.decode()
    assert "Saved Slack ops: Name, Active." in page
    assert client.post(channel_url("edit", channel), {"name": "Slack ops"}).status_code == 302
    assert AuditEvent.objects.filter(action="notification_channel.update").count() == 1


def test_rotating_the_signing_secret_shows_the_new_one_once(client, owner, organization):
    client.force_login(owner)
    client.post(
        create_url(organization),
        {"kind": "webhook", "name": "Hook", "url": HOOK_URL, "is_active": "on"},
    )
    channel = NotificationChannel.objects.get(name="Hook")
    old = unseal(channel, "signing_secret")
    assert client.post(channel_url("secret-rotate", channel)).status_code == 302  # no confirm
    channel.refresh_from_db()
    assert unseal(channel, "signing_secret") == old
    page = client.post(channel_url("secret-rotate", channel), {"confirm": str(channel.public_id)})
    channel.refresh_from_db()
    new = unseal(channel, "signing_secret")
    assert new != old and new in page.content.decode()
    assert client.get(channel_url("secret-rotate", channel)).status_code == 405


def test_send_test_queues_a_test_notification_and_says_so(client, owner, organization):
    channel = make_channel(organization, name="Bell")
    client.force_login(owner)
    response = client.post(channel_url("test", channel), follow=True)
    assert "Test message queued for Bell" in response.content.decode()
    notification = Notification.objects.get(channel=channel)
    assert notification.kind == "channel.test"
    assert AuditEvent.objects.filter(action="notification_channel.test").count() == 1
    assert client.get(channel_url("test", channel)).status_code == 405


def test_a_failing_channel_is_flagged_with_its_last_error(client, reader, organization, settings):
    settings.NOTIFICATION_CHANNEL_FAILING_AFTER = 3
    leaked = "sk-proj-" + "B" * 40
    make_channel(
        organization,
        name="Flaky hook",
        kind="webhook",
        url_hint="https://hooks.example.com",
        consecutive_failures=4,
        last_error=f"The receiver answered 500 (token {leaked}).",
    )
    make_channel(organization, name="Healthy bell", consecutive_failures=1, last_error="timeout")
    client.force_login(reader)
    html = client.get(list_url(organization)).content.decode()
    flaky = html[html.index("Flaky hook") : html.index("Healthy bell")]
    assert "failing" in flaky and "4 failed attempts in a row" in flaky
    assert "The receiver answered 500" in flaky and leaked not in html
    healthy = html[html.index("Healthy bell") :]
    assert "badge failing" not in healthy and "1 failed attempt in a row" in healthy


def test_delete_asks_first_then_deletes_and_audits(client, owner, organization):
    channel = make_channel(organization, name="Old bell")
    make_notification(channel)
    client.force_login(owner)
    confirm = client.get(channel_url("delete", channel))
    assert confirm.status_code == 200 and "1 notification" in confirm.content.decode()
    assert client.post(channel_url("delete", channel), {"confirm": "yes"}).status_code == 400
    assert NotificationChannel.objects.filter(pk=channel.pk).exists()
    response = client.post(channel_url("delete", channel), {"confirm": str(channel.public_id)})
    assert response.status_code == 302
    assert not NotificationChannel.objects.filter(pk=channel.pk).exists()
    assert AuditEvent.objects.filter(action="notification_channel.delete").count() == 1


def test_writes_need_the_csrf_token(owner, organization):
    channel = make_channel(organization, name="Bell")
    client = Client(enforce_csrf_checks=True)
    client.force_login(owner)
    assert client.post(channel_url("test", channel)).status_code == 403
    assert client.post(create_url(organization), {"kind": "in_app", "name": "x"}).status_code == 403
    assert not Notification.objects.exists()


def test_the_list_has_a_constant_number_of_queries(
    client, owner, organization, django_assert_num_queries
):
    client.force_login(owner)
    make_channel(organization, name="A")
    client.get(list_url(organization))
    # session, user, organization access, switcher, channels (failing flag computed in the
    # query), bell count (the switcher's session save was on the first page only).
    with django_assert_num_queries(6):
        client.get(list_url(organization))
    for i in range(15):
        make_channel(organization, name=f"B{i}", kind="webhook", url_hint="https://x.example")
    with django_assert_num_queries(6):
        client.get(list_url(organization))
