"""The notification pages in Chromium: the bell, the inbox, channels, history, a detail.

Each page is saved under test-artifacts/ (notifications-*.png) to be looked at. The
pages work without JavaScript: every action here is a plain link or form.
"""

from __future__ import annotations

import pytest
from django.utils import timezone

from platformadmin.notifications.models import NotificationAttempt
from tests.browser.conftest import ARTIFACTS
from tests.factories import TEST_PASSWORD
from tests.notifications.test_views import deliver_in_app, make_channel, make_notification

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def alerts(organization, project, owner):
    bell = make_channel(organization, name="Console bell")
    hook = make_channel(
        organization,
        name="Ops webhook",
        kind="webhook",
        url_hint="https://hooks.example.com",
        event_kinds=["budget.threshold", "budget.forecast"],
        consecutive_failures=5,
        last_error="The receiver answered 503 Service Unavailable; retrying in 4 min.",
        last_failure_at=timezone.now(),
    )
    make_channel(
        organization,
        name="Owners by e-mail",
        kind="email",
        email_recipients="finance@example.com",
        last_success_at=timezone.now(),
    )
    budget_alert = make_notification(
        bell,
        project=project,
        title="Budget Production: 80 % of $500.00 reached in 2026-12",
        body="$412.50 + 37 unpriced calls of $500.00 (82 %) in 2026-12, billing timezone UTC.",
        state="sent",
        sent_at=timezone.now(),
        attempts=1,
    )
    deliver_in_app(budget_alert, owner)
    reminder = make_notification(
        bell,
        project=project,
        kind="key.rotation",
        stage="7d",
        title="Key prod-backend is due for rotation in 7 days",
        body="Rotate it before 2026-12-09 (every 90 days for Production).",
        state="sent",
        sent_at=timezone.now(),
        attempts=1,
    )
    deliver_in_app(reminder, owner)
    failed = make_notification(
        hook,
        project=project,
        title="Budget Production: 80 % of $500.00 reached in 2026-12",
        state="pending",
        attempts=2,
        last_error="The receiver answered 503 Service Unavailable; retrying in 4 min.",
        next_attempt_at=timezone.now(),
    )
    for number in (1, 2):
        NotificationAttempt.objects.create(
            notification=failed,
            number=number,
            started_at=timezone.now(),
            finished_at=timezone.now(),
            status_code=503,
            error="The receiver answered 503 Service Unavailable.",
        )
    return {"hook": hook, "failed": failed}


def test_the_bell_inbox_channels_and_history(
    page, live_server, login, screenshot, owner, organization, alerts
):
    login(owner)
    page.goto(f"{live_server.url}/")
    assert page.inner_text("#bell-count") == "2"
    assert page.get_attribute("#bell", "aria-label") == "Notifications: 2 unread"
    page.click("#bell")
    page.wait_for_load_state("networkidle")
    assert "80 % of $500.00" in page.inner_text("main")
    screenshot("notifications-inbox")
    page.click("tr.unread >> text=Mark as read >> nth=0")
    page.wait_for_load_state("networkidle")
    assert page.inner_text("#bell-count") == "1"
    page.click("#mark-all-read")
    page.wait_for_load_state("networkidle")
    assert page.locator("#bell-count").count() == 0
    assert "Marked 1 notification as read." in page.inner_text(".messages")
    screenshot("notifications-inbox-read")

    page.goto(f"{live_server.url}/orgs/{organization.public_id}/")
    page.click("text=Notification channels")
    page.wait_for_load_state("networkidle")
    row = page.locator(f"#channel-{alerts['hook'].public_id}")
    assert "failing" in row.inner_text() and "503 Service Unavailable" in row.inner_text()
    screenshot("notifications-channels")
    row.locator("text=Send test").click()
    page.wait_for_load_state("networkidle")
    assert "Test message queued for Ops webhook" in page.inner_text(".messages")

    page.click("text=Add a channel")
    page.click("text=Webhook (signed JSON)")
    page.wait_for_load_state("networkidle")
    screenshot("notifications-channel-form-webhook")
    page.fill("#id_name", "Incident hook")
    page.fill("#id_url", "https://hooks.example.com/services/incident/secret-path")
    page.click("button:has-text('Add channel')")
    page.wait_for_load_state("networkidle")
    secret = page.inner_text("#secret-once").strip()
    assert len(secret) >= 32
    screenshot("notifications-channel-secret")
    page.click("text=Done — back to the channels")
    page.wait_for_load_state("networkidle")
    listing = page.content()
    assert secret not in listing and "secret-path" not in listing

    page.click("a:has-text('Delete…') >> nth=0")
    page.wait_for_load_state("networkidle")
    screenshot("notifications-channel-delete")
    page.click("text=Cancel")

    page.click("text=History")
    page.wait_for_load_state("networkidle")
    screenshot("notifications-history")
    page.select_option("#id_state", "pending")
    page.click("button:has-text('Filter')")
    page.wait_for_load_state("networkidle")
    assert "Ops webhook" in page.inner_text("#rows")
    page.click(f"a[href='/notifications/history/{alerts['failed'].public_id}/']")
    page.wait_for_load_state("networkidle")
    assert page.locator("#attempts + .table-wrap tbody tr").count() == 2
    screenshot("notifications-detail")


def test_the_pages_fit_a_phone(chromium_browser, live_server, owner, organization, alerts):
    context = chromium_browser.new_context(viewport={"width": 390, "height": 844})
    phone = context.new_page()
    phone.goto(f"{live_server.url}/accounts/login/")
    phone.fill("#id_username", owner.get_username())
    phone.fill("#id_password", TEST_PASSWORD)
    phone.click("button[type=submit]")
    phone.wait_for_load_state("networkidle")
    for path, name in (
        ("/notifications/", "notifications-inbox-phone"),
        (f"/notifications/orgs/{organization.public_id}/channels/", "notifications-channels-phone"),
    ):
        phone.goto(f"{live_server.url}{path}")
        phone.wait_for_load_state("networkidle")
        width = phone.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, (path, width)
        ARTIFACTS.mkdir(exist_ok=True)
        phone.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
    context.close()
