"""Notification history and its detail page (owners and readers of the organization).

Also the helpers the other page tests import (rows written through the models, as the
delivery side would leave them): ``make_channel``, ``make_notification``, ``deliver_in_app``.
"""

from __future__ import annotations

import datetime as dt
import itertools

import pytest
import time_machine
from django.urls import reverse
from django.utils import timezone

from platformadmin.notifications.models import (
    InAppMessage,
    Notification,
    NotificationAttempt,
    NotificationChannel,
)

pytestmark = pytest.mark.django_db

_serial = itertools.count(1)


def make_channel(organization, *, name: str = "", kind: str = "in_app", **fields):
    return NotificationChannel.objects.create(
        organization=organization, name=name or f"Channel {next(_serial)}", kind=kind, **fields
    )


def make_notification(channel, *, project=None, kind="budget.threshold", **fields):
    n = next(_serial)
    values = {
        "subject": f"budget:00000000-0000-0000-0000-{n:012}",
        "period": "2026-12",
        "stage": "80",
        "title": f"Budget at 80 % ({n})",
        "body": "$412.50 + 37 unpriced calls of $500.00 (82 %) in 2026-12.",
        "state": Notification.State.PENDING,
    }
    values.update(fields)
    values.setdefault(
        "unique_key",
        f"{channel.public_id}:{values['subject']}:{kind}:{values['period']}:{values['stage']}",
    )
    return Notification.objects.create(
        organization=channel.organization, project=project, channel=channel, kind=kind, **values
    )


def deliver_in_app(notification, *users) -> list[InAppMessage]:
    return [InAppMessage.objects.create(notification=notification, user=u) for u in users]


def history_url(organization, **query) -> str:
    url = reverse("notifications:history", kwargs={"org_id": organization.public_id})
    if query:
        url += "?" + "&".join(f"{k}={v}" for k, v in query.items())
    return url


@pytest.fixture
def channels(organization):
    return make_channel(
        organization, name="Ops webhook", kind="webhook", url_hint="https://hooks.example.com"
    ), make_channel(organization, name="Console bell")


def test_owners_and_readers_see_the_history(client, owner, reader, organization, channels):
    webhook, _ = channels
    make_notification(webhook, title="Budget Production at 80 %")
    for user in (owner, reader):
        client.force_login(user)
        page = client.get(history_url(organization))
        assert page.status_code == 200
        assert "Budget Production at 80 %" in page.content.decode()
        assert "Ops webhook" in page.content.decode()


def test_it_refuses_project_members_and_hides_from_outsiders(
    client, member, project_owner, outsider, organization
):
    for user in (member, project_owner):
        client.force_login(user)
        assert client.get(history_url(organization)).status_code == 403
    client.force_login(outsider)
    assert client.get(history_url(organization)).status_code == 404


def test_it_filters_by_channel_kind_state_and_dates(client, owner, organization, channels):
    webhook, bell = channels
    with time_machine.travel(dt.datetime(2026, 11, 3, 12, tzinfo=dt.UTC), tick=False):
        make_notification(webhook, title="November alert", state="sent")
    with time_machine.travel(dt.datetime(2026, 12, 1, 9, tzinfo=dt.UTC), tick=False):
        make_notification(bell, title="December reminder", kind="key.rotation", state="failed")
    client.force_login(owner)

    def titles(**query) -> set[str]:
        page = client.get(history_url(organization, **query))
        assert page.status_code == 200, page.content.decode()
        html = page.content.decode()
        return {t for t in ("November alert", "December reminder") if t in html}

    assert titles() == {"November alert", "December reminder"}
    assert titles(channel=webhook.public_id) == {"November alert"}
    assert titles(kind="key.rotation") == {"December reminder"}
    assert titles(state="sent") == {"November alert"}
    assert titles(since="2026-12-01") == {"December reminder"}
    assert titles(until="2026-11-30") == {"November alert"}
    assert titles(since="2026-11-03", until="2026-11-03") == {"November alert"}


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"state": "exploded"}, "State: Unknown state"),
        ({"kind": "<script>"}, "Kind: Unknown kind"),
        ({"since": "yesterday"}, "From (UTC): Enter the start date as YYYY-MM-DD."),
        ({"since": "2026-12-02", "until": "2026-12-01"}, "swap them"),
        ({"channel": "not-a-uuid"}, "Channel: That channel is not one of this organization"),
    ],
)
def test_a_bad_filter_is_a_400_naming_the_field(
    client, owner, organization, channels, query, message
):
    make_notification(channels[0], title="Hidden while the filter is wrong")
    client.force_login(owner)
    page = client.get(history_url(organization, **query))
    assert page.status_code == 400
    html = page.content.decode()
    assert message in html
    assert "Hidden while the filter is wrong" not in html
    assert "&lt;script&gt;" in html or "<script>" not in html.split("<body", 1)[1]


def test_another_organizations_channel_is_not_a_choice(
    client, owner, organization, other_organization
):
    foreign = make_channel(other_organization, name="Zeta hook")
    make_notification(foreign, title="Zeta alert")
    client.force_login(owner)
    page = client.get(history_url(organization, channel=foreign.public_id))
    assert page.status_code == 400
    assert "Zeta" not in page.content.decode()


def test_pages_are_paginated_with_a_constant_number_of_queries(
    client, owner, organization, project, channels, django_assert_num_queries
):
    webhook, bell = channels
    client.force_login(owner)
    for i in range(3):
        make_notification(webhook if i % 2 else bell, project=project)
    client.get(history_url(organization))  # warm the session and per-process caches
    # session + user, organization access, page count, bell count, organization switcher,
    # channels (filter form), the page's rows (channel and project joined); the switcher's
    # current organization is saved in the session on the first page only.
    with django_assert_num_queries(8):
        assert client.get(history_url(organization)).status_code == 200
    for i in range(60):
        make_notification(webhook if i % 2 else bell, project=project)
    with django_assert_num_queries(8):
        page = client.get(history_url(organization))
    assert page.content.decode().count("notifications/history/") == 50
    second = client.get(history_url(organization, page=2))
    assert second.content.decode().count("notifications/history/") == 13
    assert client.get(history_url(organization, page="999")).status_code == 200
    assert client.get(history_url(organization, page="x")).status_code == 200


def test_the_detail_page_lists_the_delivery_attempts(client, reader, organization, channels):
    webhook, _ = channels
    notification = make_notification(webhook, state="sent", attempts=2, sent_at=timezone.now())
    start = timezone.now()
    NotificationAttempt.objects.create(
        notification=notification,
        number=1,
        started_at=start,
        finished_at=start,
        status_code=503,
        error="The receiver answered 503 Service Unavailable: retrying in 30 s.",
    )
    NotificationAttempt.objects.create(
        notification=notification,
        number=2,
        started_at=start,
        finished_at=start,
        succeeded=True,
        status_code=200,
    )
    client.force_login(reader)
    url = reverse(
        "notifications:notification-detail", kwargs={"notification_id": notification.public_id}
    )
    page = client.get(url)
    assert page.status_code == 200
    html = page.content.decode()
    assert "503 Service Unavailable" in html and "delivered" in html
    assert notification.unique_key in html
    assert "https://hooks.example.com" in html
    assert client.post(url).status_code == 405


def test_the_detail_page_hides_from_outsiders_and_refuses_project_members(
    client, member, outsider, channels
):
    notification = make_notification(channels[0])
    url = reverse(
        "notifications:notification-detail", kwargs={"notification_id": notification.public_id}
    )
    client.force_login(outsider)
    assert client.get(url).status_code == 404
    client.force_login(member)
    assert client.get(url).status_code == 403
    missing = reverse(
        "notifications:notification-detail",
        kwargs={"notification_id": "00000000-0000-0000-0000-000000000000"},
    )
    assert client.get(missing).status_code == 404


def test_errors_are_shown_redacted(client, owner, channels):
    leaked = "sk-proj-" + "A" * 40
    notification = make_notification(
        channels[0], state="failed", last_error=f"upstream said: key {leaked} refused"
    )
    NotificationAttempt.objects.create(
        notification=notification, number=1, started_at=timezone.now(), error=f"again {leaked}"
    )
    client.force_login(owner)
    detail = client.get(
        reverse(
            "notifications:notification-detail",
            kwargs={"notification_id": notification.public_id},
        )
    ).content.decode()
    listing = client.get(history_url(channels[0].organization)).content.decode()
    assert leaked not in detail and leaked not in listing


def test_extreme_dates_are_a_page_not_an_error(client, owner, organization, channels):
    make_notification(channels[0], title="Any time")
    client.force_login(owner)
    for query in (
        {"until": "9999-12-31"},
        {"since": "0001-01-01", "until": "9999-12-31"},
        {"since": "9999-12-31"},
    ):
        page = client.get(history_url(organization, **query))
        assert page.status_code == 200, query
    assert "Any time" in client.get(history_url(organization, until="9999-12-31")).content.decode()
    assert client.get(history_url(organization, since="10000-01-01")).status_code == 400
