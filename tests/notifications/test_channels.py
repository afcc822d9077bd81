"""Channel services: validation naming the field, the URL checked by the guard and sealed,
the signing secret shown once, audited; the sealed values never in clear in the database,
repr, audit rows or the admin."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.urls import reverse

from keys.crypto import KeyRing, generate_key
from keys.fields import unseal
from keys.reencrypt import reencrypt_all
from orgs.models import AuditEvent
from platformadmin.notifications.models import NotificationChannel
from platformadmin.notifications.services import (
    notification_channel_create,
    notification_channel_delete,
    notification_channel_secret_rotate,
    notification_channel_update,
)
from platformadmin.notifications.transports import url_secrets
from platformadmin.redaction import scrub
from tests.factories import UserFactory
from tests.settings import TEST_KEY_V1

pytestmark = pytest.mark.django_db

HOOK = "https://hooks.example.com/services/T0PATHSECRET/B0PATHSECRET/tokenTOKENtoken42"


def create(organization, owner, **values) -> tuple[NotificationChannel, str | None]:
    values.setdefault("name", "Hook")
    values.setdefault("kind", "webhook")
    return notification_channel_create(organization=organization, actor=owner, **values)


def errors(exc: pytest.ExceptionInfo) -> dict[str, str]:
    return {field: " ".join(messages) for field, messages in exc.value.message_dict.items()}


def test_a_webhook_is_sealed_and_its_secret_returned_once(organization, owner):
    channel, secret = create(organization, owner, url=HOOK)
    assert secret.startswith("whsec_") and len(secret) > 40
    channel.refresh_from_db()
    assert channel.url_hint == "https://hooks.example.com"
    assert unseal(channel, "url") == HOOK
    assert unseal(channel, "signing_secret") == secret
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT url, signing_secret, url_hint FROM notifications_notificationchannel"
        )
        raw = " ".join(" ".join(row) for row in cursor.fetchall())
    for clear in (HOOK, "T0PATHSECRET", "tokenTOKENtoken42", secret):
        assert clear not in raw
        assert clear not in repr(channel) and clear not in str(channel)
    assert raw.count("v1:") == 2


def test_creation_and_changes_are_audited_with_the_hint_only(organization, owner):
    channel, secret = create(organization, owner, url=HOOK)
    notification_channel_update(
        channel=channel, actor=owner, url="https://other.example.com/p/NEWPATHSECRET1"
    )
    notification_channel_delete(channel=channel, actor=owner)
    events = AuditEvent.objects.filter(action__startswith="notification_channel.").order_by("pk")
    assert [e.action for e in events] == [
        "notification_channel.create",
        "notification_channel.update",
        "notification_channel.delete",
    ]
    assert events[0].detail["url"] == "https://hooks.example.com"
    assert events[1].detail["changes"]["url"] == [
        "https://hooks.example.com",
        "https://other.example.com",
    ]
    dump = " ".join(str(e.detail) + e.target_label for e in events)
    for clear in ("T0PATHSECRET", "NEWPATHSECRET1", secret):
        assert clear not in dump
    assert not NotificationChannel.objects.filter(pk=channel.pk).exists()


def test_the_admin_shows_the_hint_never_the_url_or_secret(client, organization, owner):
    channel, secret = create(organization, owner, url=HOOK)
    admin = UserFactory(is_staff=True, is_superuser=True)
    client.force_login(admin)
    for url in (
        reverse("admin:notifications_notificationchannel_changelist"),
        reverse("admin:notifications_notificationchannel_change", args=[channel.pk]),
    ):
        page = client.get(url).content.decode()
        assert "hooks.example.com" in page
        for clear in ("T0PATHSECRET", "tokenTOKENtoken42", secret, channel.url):
            assert clear not in page


@pytest.mark.parametrize(
    ("values", "field", "words"),
    [
        ({"url": ""}, "url", "Enter the URL"),
        ({"url": "http://hooks.example.com/x"}, "url", "https://"),
        ({"url": "ftp://hooks.example.com/x"}, "url", "not usable"),
        ({"url": "https://user:pw@hooks.example.com/x"}, "url", "user or password"),
        ({"url": "https://127.0.0.1/hook/PATHSECRET99"}, "url", "loopback"),
        ({"url": "https://169.254.169.254/latest"}, "url", "cloud metadata"),
        ({"url": "https://10.1.2.3/hook"}, "url", "private"),
        ({"url": HOOK, "name": ""}, "name", "Enter a name"),
        ({"url": HOOK, "event_kinds": ["budget.nope"]}, "event_kinds", "budget.nope"),
        ({"url": HOOK, "email_recipients": "a@example.com"}, "email_recipients", "e-mail channels"),
        (
            {"kind": "email", "email_recipients": "not an address"},
            "email_recipients",
            "not an address",
        ),
        ({"kind": "email", "url": HOOK}, "url", "take no URL"),
        ({"kind": "carrier-pigeon"}, "kind", "Choose a kind"),
        (
            {"kind": "apprise", "url": "json://hooks.example.com/x"},
            "url",
            "OUTBOUND_ALLOWED_ORIGINS",
        ),
        ({"kind": "apprise", "url": "xml://hooks.example.com/x"}, "url", "Webhook"),
        ({"kind": "apprise", "url": "mailto://u:p@gmail.com"}, "url", "not one of the services"),
        ({"kind": "apprise", "url": "nonsense://x"}, "url", "does not recognise"),
        ({"kind": "apprise", "url": "discord://localhost/TOKENTOKEN"}, "url", "loopback"),
    ],
)
def test_bad_values_are_refused_naming_the_field(organization, owner, values, field, words):
    with pytest.raises(ValidationError) as exc:
        create(organization, owner, **values)
    found = errors(exc)
    assert field in found and words in found[field], found
    assert "PATHSECRET99" not in str(found) and "TOKENTOKEN" not in str(found)
    assert not NotificationChannel.objects.exists()


def test_a_duplicate_name_is_refused_on_the_name(organization, owner):
    create(organization, owner, url=HOOK)
    with pytest.raises(ValidationError) as exc:
        create(organization, owner, url=HOOK)
    assert "already has a channel" in errors(exc)["name"]


def test_accepted_kinds(organization, owner):
    email, no_secret = create(
        organization,
        owner,
        kind="email",
        name="Mail",
        email_recipients="a@example.com, b@example.com",
    )
    assert no_secret is None and email.email_recipients == "a@example.com\nb@example.com"
    slack, _ = create(organization, owner, kind="slack", name="Slack", url=HOOK)
    assert slack.signing_secret == ""
    discord, _ = create(
        organization, owner, kind="apprise", name="Discord", url="discord://12345678/TOKENtoken"
    )
    assert discord.url_hint == "discord://… (Discord)"
    pager, _ = create(
        organization,
        owner,
        kind="apprise",
        name="Pager",
        url="pagerduty://INTEGRATIONKEY42@APIKEYAPIKEY42",
    )
    assert pager.url_hint == "pagerduty://… (PagerDuty)"  # its host is the API key
    bell, _ = create(organization, owner, kind="in_app", name="Bell", event_kinds=["key.rotation"])
    assert bell.event_kinds == ["key.rotation"] and bell.url == ""


def test_an_empty_url_on_update_keeps_the_stored_one(organization, owner):
    channel, _ = create(organization, owner, url=HOOK)
    channel.consecutive_failures = 5
    changes = notification_channel_update(channel=channel, actor=owner, url="", name="Renamed")
    assert changes == {"name": ["Hook", "Renamed"]}
    channel.refresh_from_db()
    assert unseal(channel, "url") == HOOK and channel.name == "Renamed"
    notification_channel_update(channel=channel, actor=owner, url="https://new.example.com/x")
    channel.refresh_from_db()
    assert channel.consecutive_failures == 0 and channel.url_hint == "https://new.example.com"


def test_an_unchanged_update_writes_no_audit_row(organization, owner):
    channel, _ = create(organization, owner, url=HOOK)
    before = AuditEvent.objects.count()
    assert notification_channel_update(channel=channel, actor=owner, name="Hook") == {}
    assert AuditEvent.objects.count() == before


def test_rotating_the_secret_returns_a_new_one(organization, owner):
    channel, old = create(organization, owner, url=HOOK)
    new = notification_channel_secret_rotate(channel=channel, actor=owner)
    channel.refresh_from_db()
    assert new != old and unseal(channel, "signing_secret") == new
    slack, _ = create(organization, owner, kind="slack", name="Slack", url=HOOK)
    with pytest.raises(ValidationError):
        notification_channel_secret_rotate(channel=slack, actor=owner)


def test_re_encryption_covers_channel_urls_and_secrets(organization, owner, settings):
    channel, secret = create(organization, owner, url=HOOK)
    settings.FIELD_ENCRYPTION_KEYS = f"{generate_key(2)},{TEST_KEY_V1}"
    reencrypt_all(batch_size=10)
    channel.refresh_from_db()
    assert KeyRing.version_of(channel.url) == 2
    assert KeyRing.version_of(channel.signing_secret) == 2
    assert unseal(channel, "url") == HOOK and unseal(channel, "signing_secret") == secret


def test_the_admin_switches_a_channel_off_and_deletes_it_through_the_services(
    client, organization, owner
):
    channel, _ = create(organization, owner, url=HOOK)
    admin = UserFactory(is_staff=True, is_superuser=True)
    client.force_login(admin)
    url = reverse("admin:notifications_notificationchannel_change", args=[channel.pk])
    assert client.post(url, {}).status_code == 302  # the checkbox left empty: off
    channel.refresh_from_db()
    assert channel.is_active is False
    delete = reverse("admin:notifications_notificationchannel_delete", args=[channel.pk])
    assert client.post(delete, {"post": "yes"}).status_code == 302
    actions = list(
        AuditEvent.objects.filter(action__startswith="notification_channel.")
        .order_by("pk")
        .values_list("action", "actor_label")
    )
    assert actions[1:] == [
        ("notification_channel.update", admin.get_username()),
        ("notification_channel.delete", admin.get_username()),
    ]
    assert not NotificationChannel.objects.filter(pk=channel.pk).exists()


def test_every_part_of_a_url_that_can_be_a_key_is_scrubbed():
    text = "failed: pagerduty://INTEGRATIONKEY42@APIKEYAPIKEY42 said APIKEYAPIKEY42 bad"
    parts = url_secrets("pagerduty://INTEGRATIONKEY42@APIKEYAPIKEY42")
    assert "INTEGRATIONKEY42" in parts and "APIKEYAPIKEY42" in parts
    slack = url_secrets("https://hooks.slack.com/services/T000/B000/XXXXXXXXXXXX")
    assert "XXXXXXXXXXXX" in slack and "hooks.slack.com" not in slack
    assert "APIKEY" not in scrub(text, parts)
