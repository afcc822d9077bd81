"""Issue 11's "Done when", end to end in Chromium with a real Celery worker.

As an organization owner: create a budget on the budget page, configure an in-app, an
e-mail and a webhook channel on the channels page (the webhook's signing secret read
from its one-time display), report usage through the ingestion API across 80 % of the
budget, and let a real worker (started in this process on the configured broker: the
embedded filesystem transport here, Redis in CI) evaluate the budget and deliver. Then
the bell shows the alert, the local SMTP server got the e-mail and the local HTTP
receiver got the webhook with a valid signature and the notification's idempotency key.
Screenshots: test-artifacts/governance-*.png.
"""

from __future__ import annotations

import json
import time
import urllib.request

import pytest
from celery.contrib.testing.worker import start_worker
from django.db import OperationalError, connection

from platformadmin.celery import app
from platformadmin.notifications.models import InAppMessage, Notification
from tests.conftest import ensure_catalog
from tests.notifications.receivers import (  # noqa: F401 (fixtures)
    _smtp_receiver_server,
    _webhook_receiver_server,
    wait_for,
)
from tests.notifications.receivers import smtp_receiver as smtp_receiver  # noqa: F401
from tests.notifications.receivers import webhook_receiver as webhook_receiver  # noqa: F401
from tests.usage.conftest import response_json
from usage.models import Budget, BudgetAlert
from usage.services import ingestion_token_create

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# gpt-5.5 at $5 / 1M input and $30 / 1M output: 100,000 in + 10,000 out = $0.80 a call.
CALL_COST = "0.80"


def _polled(read):
    """A read for ``wait_for`` while the worker writes. On the in-memory SQLite of a local
    run (shared cache: table locks, no waiting) this thread reads uncommitted, so it takes
    no read lock that would make the worker's write fail ("database table is locked"),
    and a read that still meets a lock just asks again. PostgreSQL (CI) needs neither."""

    def attempt():
        try:
            if connection.vendor == "sqlite":
                with connection.cursor() as cursor:
                    cursor.execute("PRAGMA read_uncommitted = 1")
            return read()
        except OperationalError:
            return None

    return attempt


def _report(live_server, token: str, first: int, count: int) -> dict:
    """POST a batch to the ingestion API as an application would."""
    records = [
        response_json(
            f"resp_gov_{first + i}",
            model="gpt-5.5",
            inp=100_000,
            cached=0,
            out=10_000,
            reasoning=0,
            created_at=time.time(),
        )
        for i in range(count)
    ]
    request = urllib.request.Request(
        f"{live_server.url}/api/v1/usage",
        data=json.dumps({"records": records}).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status in (200, 201), response.status
        return json.loads(response.read())


def test_budget_alert_reaches_the_bell_the_mailbox_and_the_webhook(
    page,
    live_server,
    login,
    screenshot,
    settings,
    owner,
    organization,
    project,
    smtp_receiver,
    webhook_receiver,
):
    ensure_catalog()
    settings.BUDGET_EVALUATION_DELAY_SECONDS = 0  # evaluate at once (no burst to gather)
    _, token = ingestion_token_create(project=project, name="billing-app", actor=None)
    login(owner)
    base = live_server.url

    # 1. A budget for the whole organization: $10.00 a month, alerts at 50 / 80 / 100 %.
    page.goto(f"{base}/usage/organizations/{organization.public_id}/budgets/new/")
    page.fill("#id_amount", "10.00")
    page.fill("#id_thresholds", "50, 80, 100")
    screenshot("governance-1-budget-form")
    page.click("main button[type=submit].primary")
    page.wait_for_load_state("networkidle")
    budget = Budget.objects.get(organization=organization)
    assert str(budget.amount) in ("10.00", "10.0000000000", "10")

    # 2. Channels: the bell, e-mail to the owners plus on-call, and the signed webhook.
    channels = f"{base}/notifications/orgs/{organization.public_id}/channels/"
    for kind, name, extra in (
        ("in_app", "Console bell", {}),
        ("email", "Owners by e-mail", {"#id_email_recipients": "oncall@example.com"}),
        ("webhook", "Ops webhook", {"#id_url": webhook_receiver.url("/hook")}),
    ):
        page.goto(f"{channels}new/?kind={kind}")
        page.fill("#id_name", name)
        for selector, value in extra.items():
            page.fill(selector, value)
        page.click("button:has-text('Add channel')")
        page.wait_for_load_state("networkidle")
    # The webhook's signing secret, shown once: the receiver verifies with it.
    webhook_receiver.secret = page.inner_text("#secret-once").strip()
    screenshot("governance-2-webhook-secret")
    page.goto(channels)
    screenshot("governance-3-channels")

    with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=30):
        # 3. Usage through the ingestion API: $4.80 (48 %), then $8.80 (88 %): 80 % crossed.
        _report(live_server, token, 0, 6)
        _report(live_server, token, 6, 5)
        # 4. The worker evaluates the budget and delivers to every channel.
        alert = wait_for(
            _polled(lambda: BudgetAlert.objects.filter(budget=budget, threshold=80).first()),
            timeout=60,
            every=0.5,
        )
        assert alert is not None, "the worker did not evaluate the budget"
        delivered = wait_for(
            _polled(
                # 50 % and 80 %, each to the bell, the e-mail and the webhook.
                lambda: (
                    Notification.objects.filter(kind="budget.threshold", state="sent").count() == 6
                )
            ),
            timeout=60,
            every=0.5,
        )
        states = list(
            Notification.objects.values_list("channel__name", "stage", "state", "last_error")
        )
        assert delivered, states
        mails = smtp_receiver.wait_for(2, timeout=30)  # the 50 % and the 80 % alerts
        hooks = webhook_receiver.wait_for(2, timeout=30)

    if connection.vendor == "sqlite":
        with connection.cursor() as cursor:
            cursor.execute("PRAGMA read_uncommitted = 0")
    # The e-mail: to the owner and the extra address, naming spend and amount.
    eighty = [m for m in mails if "80" in m.subject]
    assert len(eighty) == 1, [m.subject for m in mails]
    assert owner.email in eighty[0].rcpt_tos and "oncall@example.com" in eighty[0].rcpt_tos
    assert "$8.80" in eighty[0].text and "$10.00" in eighty[0].text
    # The webhook: signed with the channel's secret, one request per notification, its
    # idempotency key the notification's unique key.
    assert all(h.signature_valid for h in hooks), [h.signature_valid for h in hooks]
    webhook_80 = Notification.objects.get(channel__name="Ops webhook", stage="80")
    assert [h.idempotency_key for h in hooks].count(webhook_80.unique_key) == 1
    assert InAppMessage.objects.filter(user=owner, notification__stage="80").count() == 1

    # 5. The bell shows it.
    page.goto(f"{base}/")
    assert page.inner_text("#bell-count") == "2"  # 50 % and 80 %
    screenshot("governance-4-bell")
    page.click("#bell")
    page.wait_for_load_state("networkidle")
    text = page.inner_text("main")
    assert "80" in text and "$8.80" in text
    screenshot("governance-5-inbox")
    page.goto(f"{base}/notifications/orgs/{organization.public_id}/history/")
    assert page.locator("text=Sent").count() >= 6
    screenshot("governance-6-history")
