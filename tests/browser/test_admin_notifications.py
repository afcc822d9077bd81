"""The Django admin's notification pages in Chromium: a channel shows its URL's hint only,
a notification its delivery attempts. Screenshots in test-artifacts/."""

from __future__ import annotations

import pytest
from django.urls import reverse

from platformadmin.notifications import delivery
from platformadmin.notifications.services import (
    notification_channel_create,
    notifications_enqueue,
)
from tests.factories import OrganizationFactory, UserFactory, add_org_member
from tests.notifications.receivers import _webhook_receiver_server  # noqa: F401 (fixture)
from tests.notifications.receivers import webhook_receiver as webhook_receiver  # noqa: F401

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

HOOK_PATH = "/hook/T0ADMINSECRET/B0ADMINSECRET"


def test_the_admin_shows_hints_and_attempts_never_the_url(
    page, live_server, login, screenshot, webhook_receiver
):
    organization = OrganizationFactory(name="Acme")
    owner = UserFactory(username="owner")
    add_org_member(owner, organization, "owner")
    created = notification_channel_create(
        organization=organization,
        actor=owner,
        kind="webhook",
        name="Ops hook",
        url=webhook_receiver.url(HOOK_PATH),
    )
    webhook_receiver.statuses = [503]
    [row] = notifications_enqueue(
        organization=organization,
        kind="budget.threshold",
        subject="budget:demo",
        period="2026-12",
        stage="80",
        title="Budget 80% reached: Acme (2026-12)",
        body="$80.00 of $100.00 + 3 unpriced calls",
        payload={},
    )
    delivery.notification_deliver(notification_id=row.pk)  # 503: a retry is scheduled
    admin = UserFactory(username="admin", is_staff=True, is_superuser=True)
    login(admin)

    page.goto(
        live_server.url
        + reverse("admin:notifications_notificationchannel_change", args=[created.channel.pk])
    )
    content = page.content()
    assert "127.0.0.1" in content  # the hint
    for clear in ("T0ADMINSECRET", created.signing_secret, created.channel.url):
        assert clear not in content
    screenshot("admin-notification-channel")

    page.goto(live_server.url + reverse("admin:notifications_notification_change", args=[row.pk]))
    content = page.content()
    assert "HTTP 503" in content and "T0ADMINSECRET" not in content
    screenshot("admin-notification-attempts")
