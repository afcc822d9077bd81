"""The whole key lifecycle in a real browser (Debian's Chromium through Playwright).

One long flow, to keep the suite fast: sign in, create a project, add a key and see
it once, test the connection, reveal it with the password, rotate, revoke, read the
audit log and the checklist, look at the Django admin; then a reader sees no edit
controls and gets 403 on a direct POST.

Every HTTP response the browser receives is scanned: the key's full value must
appear in exactly two response bodies (the creation page and the reveal), and the
rotated value in none.
"""

from __future__ import annotations

import pytest

from keys.models import APIKey
from orgs.models import AuditEvent
from tests.factories import (
    TEST_PASSWORD,
    OrganizationFactory,
    UserFactory,
    add_org_member,
    fake_secret,
)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


class ResponseScanner:
    """Collects every response and, on ``scan()``, reads the bodies of the new ones."""

    def __init__(self, page):
        self.pending = []
        self.bodies: list[tuple[str, str, int, bytes]] = []
        page.on("response", lambda response: self.pending.append(response))

    def scan(self) -> None:
        while self.pending:
            response = self.pending.pop(0)
            try:
                body = response.body()
            except Exception:  # noqa: BLE001 - redirects and aborted requests have no body
                body = b""
            self.bodies.append((response.request.method, response.url, response.status, body))

    def containing(self, value: str) -> list[tuple[str, str, int]]:
        needle = value.encode()
        return [(m, u, s) for m, u, s, b in self.bodies if needle in b]


def test_key_lifecycle_in_the_browser(page, login, live_server, screenshot, openai_simulator):
    organization = OrganizationFactory(name="Acme", slug="acme")
    owner = UserFactory(username="alice", is_staff=True, is_superuser=True)
    add_org_member(owner, organization, "owner")
    reader = UserFactory(username="rita")
    add_org_member(reader, organization, "reader")
    base = live_server.url
    scanner = ResponseScanner(page)

    def step():
        page.wait_for_load_state("networkidle")
        scanner.scan()

    # Sign in: the home page is the organization switcher.
    page.goto(base + "/accounts/login/")
    screenshot("console-00-sign-in")
    login(owner)
    step()
    assert page.locator("#organization-switcher").is_visible()
    screenshot("console-01-organizations")
    page.click("#organization-switcher >> text=Acme")
    step()
    screenshot("console-02-organization")

    # Create a project.
    page.click("summary:has-text('New project')")
    page.fill("#id_name", "Checkout")
    page.select_option("#id_environment", "production")
    page.click("#new-project button[type=submit]")
    step()
    assert page.locator("h1").inner_text().startswith("Checkout")
    project = organization.projects.get(name="Checkout")
    screenshot("console-03-project")

    # Project settings: an output-token cap (a checklist row turns to pass).
    page.click("a:has-text('Settings')")
    step()
    page.fill("#id_max_output_tokens", "4000")
    screenshot("console-03b-project-settings")
    page.click("button:has-text('Save settings')")
    step()
    project.refresh_from_db()
    assert project.max_output_tokens == 4000

    # Add a key (an OpenAI-compatible key on the simulator) and test the connection.
    secret = fake_secret("proj")
    page.click("text=Add a key")
    step()
    page.fill("#id_name", "checkout service")
    page.select_option("#id_kind", "project")
    page.select_option("#id_provider", "compatible")
    page.fill("#id_base_url", openai_simulator.base_url)
    page.select_option("#id_permissions", "restricted")
    page.fill("#id_secret", secret)
    page.check("#id_test_connection")
    page.click("button:has-text('Add key')")
    step()
    assert page.locator("#secret-once").inner_text().strip() == secret
    assert "Test connection: OK" in page.locator("#test-result").inner_text()
    screenshot("console-04-key-created")
    api_key = APIKey.objects.get(project=project)
    first_hint = api_key.hint

    page.click("text=Done — open the key")
    step()
    assert secret not in page.content()
    page.click("#test-connection")  # HTMX: the result replaces a fragment, no reload
    page.wait_for_selector("#test-slot #test-result")
    step()
    assert (
        "request id req_" in page.locator("#test-slot").inner_text()
    )  # named once, in the message
    screenshot("console-05-key")

    # Reveal with the password.
    page.click("a:has-text('Reveal')")
    step()
    page.fill("#id_password", TEST_PASSWORD)
    page.click("button:has-text('Reveal')")
    step()
    assert page.locator("#revealed-secret").inner_text().strip() == secret
    screenshot("console-06-reveal")

    # Rotate: paste a new value; the old hint stays in the history.
    new_secret = fake_secret("proj")
    page.goto(f"{base}/keys/{api_key.public_id}/rotate/")
    step()
    page.fill("#id_secret", new_secret)
    page.click("button:has-text('Rotate')")
    step()
    history = page.locator("#history").inner_text()
    assert first_hint in history and "Rotated" in history
    screenshot("console-07-rotated")

    # Revoke: the row stays, marked revoked, with no lifecycle controls left.
    page.click("a:has-text('Revoke')")
    step()
    page.check("#id_confirm")
    page.fill("#id_reason", "end of the browser test")
    page.click("button:has-text('Revoke the key')")
    step()
    assert page.locator("#key-status").inner_text() == "Revoked"
    assert page.locator("a:has-text('Rotate')").count() == 0
    api_key.refresh_from_db()
    assert api_key.status == APIKey.Status.REVOKED
    screenshot("console-08-revoked")

    # The checklist and the audit log.
    page.goto(f"{base}/orgs/projects/{project.public_id}/checklist/")
    step()
    assert "not configured" in page.locator("#checklist").inner_text()
    screenshot("console-09-checklist")
    page.goto(f"{base}/orgs/{organization.public_id}/audit/")
    step()
    events = page.locator("#events").inner_text()
    for action in (
        "auth.login",
        "project.create",
        "project.settings_update",
        "key.create",
        "key.test",
        "key.reveal",
        "key.rotate",
        "key.revoke",
    ):
        assert action in events, action
    screenshot("console-10-audit-log")

    # The Django admin pages of the same objects.
    reveal_event = AuditEvent.objects.get(action="key.reveal")
    for path in (
        "/admin/",
        "/admin/keys/apikey/",
        f"/admin/keys/apikey/{api_key.pk}/change/",
        f"/admin/orgs/project/{project.pk}/change/",
        "/admin/orgs/auditevent/",
        f"/admin/orgs/auditevent/{reveal_event.pk}/change/",
    ):
        response = page.goto(base + path)
        assert response.status == 200, path
        step()
    screenshot("console-11-admin-key")

    # A reader: no edit controls, and a direct POST is refused with 403.
    page.goto(base + "/")
    step()
    page.click("button:has-text('Sign out')")
    step()
    assert "/accounts/login/" in page.url
    login(reader)
    step()
    page.goto(f"{base}/orgs/projects/{project.public_id}/")
    step()
    assert page.locator("text=Add a key").count() == 0
    assert page.locator("a:has-text('Settings')").count() == 0
    screenshot("console-12-reader-project")
    page.goto(f"{base}/keys/{api_key.public_id}/")
    step()
    for control in ("Reveal", "Rotate", "Revoke", "Test connection"):
        assert (
            page.locator(f"button:has-text('{control}'), a:has-text('{control}')").count() == 0
        ), control
    statuses = page.evaluate(
        """async (urls) => {
            const token = JSON.parse(document.body.getAttribute('hx-headers'))['X-CSRFToken'];
            const out = [];
            for (const [url, body] of urls) {
                const r = await fetch(url, {method: 'POST', headers: {'X-CSRFToken': token},
                                            body: new URLSearchParams(body)});
                out.push(r.status);
            }
            return out;
        }""",
        [
            [f"/keys/{api_key.public_id}/rotate/", {"secret": fake_secret("proj")}],
            [
                f"/keys/projects/{project.public_id}/new/",
                {
                    "name": "x",
                    "kind": "project",
                    "provider": "openai",
                    "permissions": "all",
                    "secret": fake_secret("proj"),
                },
            ],
            [f"/keys/{api_key.public_id}/reveal/", {"password": TEST_PASSWORD}],
            [f"/orgs/projects/{project.public_id}/settings/", {"name": "hijacked"}],
        ],
    )
    step()
    assert statuses == [403, 403, 403, 403]
    assert APIKey.objects.filter(project=project).count() == 1
    assert not organization.projects.filter(name="hijacked").exists()

    # Over the whole flow: the first value in exactly two responses, the rotated one in none.
    assert len(scanner.bodies) > 30
    hits = scanner.containing(secret)
    assert [(m, u.replace(base, "")) for m, u, _ in hits] == [
        ("POST", f"/keys/projects/{project.public_id}/new/"),
        ("POST", f"/keys/{api_key.public_id}/reveal/"),
    ], hits
    assert scanner.containing(new_secret) == []
