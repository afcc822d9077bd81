"""The reconciliation page and its Pull now button: who sees them, what they show."""

from __future__ import annotations

from datetime import UTC, timedelta

import pytest
import time_machine
from django.urls import reverse
from django.utils import timezone
from openai import OpenAI

from platformadmin.notifications.models import Notification
from platformadmin.openai.results import GenerateParams
from platformadmin.openai.services import generate
from platformadmin.sync.models import SyncRun
from platformadmin.sync.services import usage_pull
from tests.factories import UserFactory, add_project_member

pytestmark = pytest.mark.django_db


def _url(linked, name="sync:reconciliation"):
    return reverse(name, kwargs={"org_id": linked.organization.public_id})


def _signed_in(client, user):
    client.force_login(user)
    return client


def _call(linked, n=1):
    for i in range(n):
        assert generate(
            api_key=linked.api_key,
            project=linked.project,
            params=GenerateParams(model="gpt-4.1-mini", input=f"q {i}"),
        ).ok


def test_the_owner_sees_logged_and_billed_side_by_side(client, linked, owner):
    _call(linked, 2)
    usage_pull(organization=linked.organization, days=1)
    page = _signed_in(client, owner).get(_url(linked))
    assert page.status_code == 200
    html = page.content.decode()
    assert linked.project.name in html and "gpt-4.1-mini" in html
    assert "2 / 2" in html  # requests logged / OpenAI
    assert "provisional" in html and "Pull now from OpenAI" in html
    row = page.context["rows"][0][0]
    assert row.cost_difference == 0 and page.context["totals"]["difference"] == 0


def test_a_reader_sees_it_without_the_pull_button_and_cannot_pull(client, linked, reader):
    page = _signed_in(client, reader).get(_url(linked))
    assert page.status_code == 200 and "Pull now" not in page.content.decode()
    assert client.post(_url(linked, "sync:usage-pull")).status_code == 403
    assert not SyncRun.objects.exists()


def test_project_members_get_403_and_outsiders_404(client, linked, outsider):
    member = UserFactory()
    add_project_member(member, linked.project, "owner")
    assert _signed_in(client, member).get(_url(linked)).status_code == 403
    assert client.post(_url(linked, "sync:usage-pull")).status_code == 403
    assert _signed_in(client, outsider).get(_url(linked)).status_code == 404


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("since=yesterday", "since"),
        ("until=2026-13-01", "until"),
        ("since=2026-01-01&until=2025-01-01", "since"),
    ],
)
def test_a_bad_range_is_a_400_naming_the_field(client, linked, owner, query, field):
    page = _signed_in(client, owner).get(_url(linked) + "?" + query)
    assert page.status_code == 400
    assert page.content.decode().startswith(f"{field}:")


def test_pull_now_pulls_and_says_what_changed(client, linked, owner):
    _call(linked)
    reply = _signed_in(client, owner).post(_url(linked, "sync:usage-pull"), follow=True)
    assert reply.status_code == 200
    assert "usage and costs: 1 usage rows" in reply.content.decode()
    again = client.post(_url(linked, "sync:usage-pull"), follow=True)
    assert "nothing changed since the last pull" in again.content.decode()
    assert SyncRun.objects.filter(status=SyncRun.Status.SUCCEEDED).count() == 2


def test_an_unreported_closed_day_is_notified_once(linked, settings, owner):
    settings.RECONCILIATION_GAP_MIN_USD = "0.000001"
    app = OpenAI(api_key=linked.upstream_key["value"], base_url=linked.simulator.base_url)
    app.responses.create(model="gpt-4.1-mini", input="not reported")
    app.close()
    later = timezone.now().astimezone(UTC) + timedelta(days=3)
    with time_machine.travel(later, tick=False):
        # The simulator stamped the call today: three days on, that day is closed.
        first = usage_pull(organization=linked.organization, days=5)
        second = usage_pull(organization=linked.organization, days=5)
    assert first.report["gaps_notified"] == 1 and second.report["gaps_notified"] == 0
    rows = Notification.objects.filter(kind="reconciliation.gap")
    assert rows.count() == rows.values("channel").distinct().count() >= 1
    assert "not reporting" in rows.first().body
