"""The walk: every page as each demo user, at desktop and phone width (issue 9, "Done when").

The demo data is loaded as `make run` loads it (the seed_demo command), the three demo
users get a known password, and for each of them at 1,440 px and 390 px wide the walker
signs in, follows every same-origin link from the home page (breadth-first, one page of
each kind rendered, every link's status checked, CSV exports fetched), then opens the pages
links may not reach (a key's one-time pages, the playground with a streamed run, the
usage pages, ingestion tokens, the checklist, the audit log, 2FA set-up, the Django admin
for the superuser) and, signed out, the sign-in and password-reset pages.

Every problem on every page is collected and the test fails once at the end listing all
of them with role, width and page (tests/browser/walk_helpers.py says what is checked).
Screenshots: test-artifacts/walk/<role>/<width>/<page>.png.
"""

from __future__ import annotations

import io
import re
import shutil

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from playwright.sync_api import Error as PlaywrightError

from keys.models import APIKey
from orgs.models import Invitation, Organization, Project
from orgs.otp import totp_device_start
from orgs.services import invitation_create
from tests.browser.conftest import ARTIFACTS
from tests.browser.walk_helpers import Walker, text_problems
from tests.factories import TEST_PASSWORD, UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

WIDTHS = (1440, 390)
ROLES = ("admin", "reader", "developer")
WALK = ARTIFACTS / "walk"


@pytest.fixture
def demo(settings, openai_simulator):
    """The demo data of `make run`, its keys pointing at this test's simulator."""
    settings.OPENAI_SIMULATOR_URL = openai_simulator.base_url
    call_command(
        "seed_demo", stdout=io.StringIO()
    )  # the random passwords it prints are replaced below
    users = {u.username: u for u in get_user_model().objects.filter(username__in=ROLES)}
    assert set(users) == set(ROLES), users
    for user in users.values():  # seed_demo prints random passwords: set a known one
        user.set_password(TEST_PASSWORD)
        user.save()
    org = Organization.objects.get(slug="acme")
    production = Project.objects.get(organization=org, name="Production")
    key = APIKey.objects.get(project=production, kind=APIKey.Kind.PROJECT)
    org_key = APIKey.objects.get(organization=org, project=None, kind=APIKey.Kind.ADMIN)
    return {"users": users, "org": org, "project": production, "key": key, "org_key": org_key}


def _refine_kind(view_name: str, kwargs: dict) -> str:
    """Keys of each kind and projects of each environment look different: one of each."""
    if view_name == "keys:key-detail":
        return (
            APIKey.objects.filter(public_id=kwargs["key_id"]).values_list("kind", flat=True).first()
            or "?"
        )
    if view_name == "orgs:project-detail":
        return (
            Project.objects.filter(public_id=kwargs["project_id"])
            .values_list("environment", flat=True)
            .first()
            or "?"
        )
    return ""


def _sign_in(walker: Walker, username: str) -> None:
    page = walker.page
    walker.visit(f"{walker.base_url}/accounts/login/", "00-sign-in")
    page.fill("#id_username", username)
    page.fill("#id_password", TEST_PASSWORD)
    with page.expect_navigation():
        page.click("button[type=submit]")
    walker.settle()
    if "/accounts/login" in page.url:
        walker.fail("signing in with the demo password did not leave the sign-in page")


def _attempt(walker: Walker, what: str, action) -> None:
    """Run one scripted step; a form that changed shape is a problem to list, not a crash."""
    try:
        action()
    except PlaywrightError as exc:  # a timeout or a missing element: reported with the step
        walker.fail(f"could not {what}: {type(exc).__name__}: {str(exc).splitlines()[0]}")


def _direct_pages(walker: Walker, demo: dict, role: str) -> None:
    """Pages links may not reach. The organization owner must get every one; the reader and
    the developer may get a 403 page where their role does not allow it (that page is
    checked too), never a 404 or a 500."""
    base, org, project, key = walker.base_url, demo["org"], demo["project"], demo["key"]
    expect = (200,) if role == "admin" else (200, 403)
    page = walker.page
    pages = {
        "organization": f"/orgs/{org.public_id}/",
        "audit": f"/orgs/{org.public_id}/audit/",
        "project": f"/orgs/projects/{project.public_id}/",
        "project-settings": f"/orgs/projects/{project.public_id}/settings/",
        "checklist": f"/orgs/projects/{project.public_id}/checklist/",
        "key": f"/keys/{key.public_id}/",
        "organization-admin-key": f"/keys/{demo['org_key'].public_id}/",
        "key-rotate": f"/keys/{key.public_id}/rotate/",
        "key-revoke": f"/keys/{key.public_id}/revoke/",
        "key-reveal": f"/keys/{key.public_id}/reveal/",
        "key-create": f"/keys/projects/{project.public_id}/new/",
        "organization-edit": f"/orgs/{org.public_id}/edit/",
        "project-create": f"/orgs/{org.public_id}/projects/new/",
        "usage": f"/usage/projects/{project.public_id}/",
        "ingestion-tokens": f"/usage/projects/{project.public_id}/ingestion-tokens/",
        "playground": f"/playground/?project={project.public_id}",
        "2fa-setup": "/accounts/2fa/setup/",
    }
    # An organization-level key is not even shown to someone with only project roles.
    unseen = {"organization-admin-key": (200, 403, 404)} if role != "admin" else {}
    statuses = {
        name: walker.visit(base + path, f"direct-{name}", expect=unseen.get(name, expect))
        for name, path in pages.items()
    }

    if statuses["checklist"] == 200 and page.locator("button[hx-get]").count():

        def recheck() -> None:
            page.click("button[hx-get]")
            walker.check("direct-checklist-rechecked")

        _attempt(walker, "recheck the checklist (htmx)", recheck)

    if role == "admin":

        def test_connection() -> None:
            walker.visit(base + pages["key"], "direct-key")
            page.click("#test-connection")
            page.wait_for_selector("#test-result strong")
            walker.check("direct-key-tested")
            if "OK" not in page.text_content("#test-result strong"):
                walker.fail(
                    f"Test connection of a demo key failed: {page.text_content('#test-result')!r}"
                )

        _attempt(walker, "test the key's connection (htmx)", test_connection)

        def reveal() -> None:
            walker.visit(base + pages["key-reveal"], "direct-key-reveal")
            page.fill("#id_password", TEST_PASSWORD)
            walker.submit("button[type=submit].primary", "direct-key-revealed")
            if not page.locator(".secret-once").count():
                walker.fail("the reveal did not show the key's value")

        _attempt(walker, "reveal the key", reveal)

        def create_key() -> None:
            walker.visit(base + pages["key-create"], "direct-key-create")
            page.fill("#id_name", f"walk key {walker.width}")
            if page.locator("select#id_permissions").count():
                page.select_option("#id_permissions", "restricted")
            page.fill("#id_secret", f"sk-proj-walk{walker.width}" + "x" * 32)
            walker.submit("button[type=submit].primary", "direct-key-created")
            if not page.locator(".secret-once").count():
                walker.fail("adding a key did not show the key-created page with its value")

        _attempt(walker, "add a key", create_key)

        def create_token() -> None:
            walker.visit(base + pages["ingestion-tokens"], "direct-ingestion-tokens")
            page.fill("#id_name", f"walk token {walker.width}")
            walker.submit("button[type=submit].primary", "direct-ingestion-token-created")
            if not page.locator(".secret-once").count():
                walker.fail("creating an ingestion token did not show the token once")

        _attempt(walker, "create an ingestion token", create_token)

        for name, path in {
            "admin": "/admin/",
            "admin-keys": "/admin/keys/apikey/",
            "admin-key": f"/admin/keys/apikey/{key.pk}/change/",
            "admin-key-add": "/admin/keys/apikey/add/",
            "admin-project": f"/admin/orgs/project/{project.pk}/change/",
            "admin-usage": "/admin/usage/usagerecord/",
        }.items():
            walker.visit(base + path, f"direct-{name}")

    if role == "developer":

        def streamed_run() -> None:
            walker.visit(base + pages["playground"], "direct-playground")
            page.select_option("#id_api_key", str(key.public_id))
            page.select_option("#id_model", "gpt-5.4-mini")
            page.fill("#id_input", "Say hello to the walker.")
            if not page.is_checked("#id_stream"):
                walker.fail("streaming is not the playground's default")
                page.check("#id_stream")
            page.click("#run-button")
            page.wait_for_selector("#result-details")
            walker.check("direct-playground-streamed")
            if page.text_content("#result-status") != "completed":
                walker.fail(f"the streamed run ended {page.text_content('#result-status')!r}")

        _attempt(walker, "run the playground streamed", streamed_run)


def _signed_out_pages(walker: Walker, demo: dict, mailoutbox) -> None:
    """Sign-in, a 404, an invitation's page, and the whole password reset with a user made
    for it."""
    base, page = walker.base_url, walker.page
    walker.visit(f"{base}/accounts/login/", "sign-in")
    walker.visit(f"{base}/no-such-page/", "not-found", expect=(404,))
    # A form whose security token no longer matches (cookies gone): the CSRF failure page.
    walker.visit(f"{base}/accounts/login/", "sign-in")
    page.context.clear_cookies()
    page.fill("#id_username", "nobody")
    page.fill("#id_password", "not a password")
    with page.expect_navigation() as navigation:
        page.click("button[type=submit]")
    if navigation.value is None or navigation.value.status != 403:
        walker.fail("a sign-in form without its CSRF cookie did not answer 403")
    walker.check("form-expired")
    if "This form has expired" not in page.content():
        walker.fail("the CSRF failure page does not say the form expired")
    email = f"invited{walker.width}@example.com"
    invitation_create(
        organization=demo["org"],
        email=email,
        role=Invitation.Role.ORG_READER,
        actor=demo["users"]["admin"],
    )
    invited = [
        m
        for mail in mailoutbox
        if email in mail.to
        for m in re.findall(r"/invitations/[^\s/]+/", mail.body)
    ]
    if invited:
        walker.visit(base + invited[-1], "invitation")
    else:
        walker.fail(f"no invitation e-mail with a link was sent to {email}")
    user = UserFactory(username=f"reset{walker.width}", email=f"reset{walker.width}@example.com")
    walker.visit(f"{base}/accounts/password-reset/", "password-reset")
    if not page.locator("main a[href='/accounts/login/']").count():
        walker.fail("the password-reset page has no way back to sign in")
    page.fill("#id_email", user.email)
    walker.submit("button[type=submit].primary", "password-reset-sent")
    links = [
        m
        for mail in mailoutbox
        if user.email in mail.to
        for m in re.findall(r"/accounts/reset/\S+", mail.body)
    ]
    if not links:
        walker.fail(f"no password-reset e-mail with a link was sent to {user.email}")
        return
    walker.visit(base + links[-1], "password-reset-choose")
    page.fill("#id_new_password1", "a new walker password 77")
    page.fill("#id_new_password2", "a new walker password 77")
    walker.submit("button[type=submit].primary", "password-reset-complete")
    walker.visit(base + links[-1], "password-reset-used-link")

    # A wrong password, then a user with an authenticator: the code page, and a wrong code.
    def sign_in_as(username: str, password: str, name: str) -> None:
        walker.visit(f"{base}/accounts/login/", "sign-in")
        page.fill("#id_username", username)
        page.fill("#id_password", password)
        walker.submit("main button[type=submit]", name)

    sign_in_as(user.username, "not the password", "sign-in-wrong-password")
    if not page.locator(".errors").count():
        walker.fail("a wrong password did not say so on the sign-in page")
    device, _ = totp_device_start(user=user)
    device.confirmed = True  # as if its first code had been typed on the set-up page
    device.save(update_fields=["confirmed"])
    sign_in_as(user.username, "a new walker password 77", "two-factor-code")
    if "/accounts/2fa/" not in page.url:
        walker.fail(f"a user with an authenticator was not asked for a code (landed on {page.url})")
        return
    page.fill("#id_token", "000000")
    walker.submit("main button[type=submit].primary", "two-factor-wrong-code")
    if not page.locator(".errors").count():
        walker.fail("a wrong two-factor code did not say so")


def test_every_page_as_every_demo_user_at_both_widths(
    chromium_browser, live_server, demo, mailoutbox
):
    shutil.rmtree(WALK, ignore_errors=True)  # this run's screenshots only
    problems: list[str] = []
    crawled: dict[tuple[str, int], int] = {}
    for width in WIDTHS:
        for role in ROLES:
            context = chromium_browser.new_context(viewport={"width": width, "height": 900})
            page = context.new_page()
            page.set_default_timeout(15_000)
            walker = Walker(
                page=page,
                base_url=live_server.url,
                role=role,
                width=width,
                shots=WALK / role / str(width),
                staff=demo["users"][role].is_staff,
                refine_kind=_refine_kind,
            )
            _sign_in(walker, role)
            walker.crawl(f"{live_server.url}/")
            crawled[(role, width)] = len(walker.visited)
            _direct_pages(walker, demo, role)
            timing = ", ".join(f"{k} {v:.1f} s" for k, v in walker.seconds.items())
            (WALK / role / str(width) / "pages.txt").write_text(
                "\n".join(walker.visited) + f"\n# {timing}\n"
            )
            problems = list(dict.fromkeys(problems + walker.problems))  # a page opened twice: once
            context.close()

        context = chromium_browser.new_context(viewport={"width": width, "height": 900})
        page = context.new_page()
        page.set_default_timeout(15_000)
        walker = Walker(
            page=page,
            base_url=live_server.url,
            role="signed-out",
            width=width,
            shots=WALK / "signed-out" / str(width),
        )
        _signed_out_pages(walker, demo, mailoutbox)
        problems = list(dict.fromkeys(problems + walker.problems))
        context.close()

    # The crawl really went somewhere: the organization, its projects, keys and usage.
    for (role, width), count in crawled.items():
        assert count >= 5, f"{role} @ {width}px: only {count} pages reached by links"
    assert not problems, f"{len(problems)} problems on the walk:\n" + "\n".join(problems)


# --- the checks themselves can fail -----------------------------------------------------
@pytest.mark.parametrize(
    "text, expected",
    [
        ("Spend 0.0600499250000000 this week", "raw decimal"),
        ("Cost $1.23456 today", "raw decimal"),
        ("Cost $0.064 today", "more than 2 decimals"),
        ("Cost $0.0000", "$0.0000"),
        ("Cost $0.0000983250", "raw decimal"),
        ("Cost 0.0016327000", "raw decimal"),
        ("Rotation rotation_period_days must be set", "raw field name"),
        ("max_output_tokens: 4096", "raw field name"),
    ],
)
def test_the_text_checks_catch_raw_numbers_and_names(text, expected):
    assert any(expected in what for what, _ in text_problems(text)), text_problems(text)


@pytest.mark.parametrize(
    "text",
    [
        "$1.23 spent, $0.004 below a cent, 12,345 tokens, gpt-5.4-mini, 3.5 s",
        "$0.00065 and $0.000098 below a cent, $ 0.000012",
        "sk-proj-…abcd, sk-proj-…j_xr, resp_123, developer@example.com, /api/v1/usage",
    ],
)
def test_the_text_checks_pass_readable_text(text):
    assert text_problems(text) == []


def test_the_walker_reports_csp_overflow_raw_text_and_broken_links(chromium_browser, live_server):
    """On the sign-in page, made wrong on purpose: each check reports its problem."""
    context = chromium_browser.new_context(viewport={"width": 390, "height": 900})
    page = context.new_page()
    walker = Walker(
        page=page,
        base_url=live_server.url,
        role="self-test",
        width=390,
        shots=ARTIFACTS / "walk-self-test",
    )
    walker.visit(f"{live_server.url}/accounts/login/", "sign-in")
    assert walker.problems == []
    page.evaluate("""() => {
      const s = document.createElement("style"); s.textContent = "body { color: red }"; document.head.append(s);
      const wide = document.createElement("div"); wide.textContent = "wide"; wide.className = "too-wide";
      document.body.append(wide);
      const p = document.createElement("p"); p.textContent = "Spent $0.0600499250000000 of max_output_tokens";
      document.querySelector("main").append(p);
      const a = document.createElement("a"); a.href = "/orgs/not-a-page/"; a.textContent = "broken";
      document.querySelector("main").append(a);
      const code = document.createElement("code"); code.textContent = "allowed_models"; document.body.append(code);
    }""")
    # An element wider than the viewport, set through the CSSOM (allowed by the CSP).
    page.evaluate("() => { document.querySelector('.too-wide').style.width = '900px'; }")
    page.evaluate("() => console.error('walk self-test')")
    page.wait_for_timeout(300)
    walker.check("broken-on-purpose")
    assert walker.check_link(f"{live_server.url}/orgs/not-a-page/", page.url, "broken") is False
    assert walker.check_link(f"{live_server.url}/export.csv", page.url, "export") is False
    context.close()
    report = "\n".join(walker.problems)
    assert "style-src" in report, report
    assert "console error" in report and "walk self-test" in report, report
    assert "scrolls sideways" in report and "too-wide" in report, report
    assert (
        "raw decimal" in report
        and "more than 2 decimals" not in report
        and "max_output_tokens" in report
    ), report
    assert "allowed_models" not in report, report  # inside <code>
    assert "“broken” to /orgs/not-a-page/ answers 404" in report, report
    assert "CSV link “export” to /export.csv answers 404" in report, report
