"""Every console page in Chromium under the Content-Security-Policy: no violation, no error.

The pages are walked as a person would (sign in, the organization, a project, a key's
pages, the playground with a streamed run, the 2FA set-up, the Django admin, then the
signed-out pages). Each HTML response must carry the policy (and the Referrer- and
Permissions-Policy); any ``securitypolicyviolation`` event, console error or page error
on any of them fails the test, with the page and the message.
"""

from __future__ import annotations

import pytest
from django.contrib.auth.tokens import default_token_generator
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode

from tests.conftest import ensure_catalog
from tests.factories import TEST_PASSWORD, add_project_member
from tests.platformadmin.helpers import sim_key

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# Registered before any page script runs, on every document: violations are reported to
# Python through the exposed binding (a page's own console may be gone after navigation).
REPORT_VIOLATIONS = """
document.addEventListener("securitypolicyviolation", (e) => {
  window.__reportViolation(`${e.violatedDirective} blocked ${e.blockedURI || "inline"} `
                           + `at ${e.sourceFile || location.href}:${e.lineNumber} (${e.sample || ""})`);
});
"""
REQUIRED_DIRECTIVES = {
    "default-src": "'self'",
    "frame-ancestors": "'none'",
    "form-action": "'self'",
    "base-uri": "'none'",
    "object-src": "'none'",
    "script-src": "'self'",
    "style-src": "'self'",
}


@pytest.fixture(autouse=True)
def _catalog(transactional_db):
    ensure_catalog()


def _directives(header: str) -> dict[str, str]:
    parts = (p.strip().split(None, 1) for p in header.split(";") if p.strip())
    return {p[0]: (p[1] if len(p) > 1 else "") for p in parts}


class Watch:
    """What the browser reported while the pages were visited."""

    def __init__(self, page):
        self.problems: list[str] = []
        self.documents: list[tuple[str, dict]] = []
        page.expose_binding(
            "__reportViolation",
            lambda source, text: self.problems.append(
                f"CSP violation on {source['frame'].url}: {text}"
            ),
        )
        page.add_init_script(REPORT_VIOLATIONS)
        page.on("console", self._console)
        page.on("pageerror", lambda exc: self.problems.append(f"page error on {page.url}: {exc}"))
        page.on("response", self._response)

    def _console(self, msg) -> None:
        if msg.type != "error":
            return
        where = msg.location.get("url", "")
        # The Django admin's pages have no icon link, so Chromium asks for /favicon.ico.
        if where.endswith("/favicon.ico") and "status of 404" in msg.text:
            return
        self.problems.append(
            f"console error on {msg.page.url if msg.page else '?'} ({where}): {msg.text}"
        )

    def _response(self, response) -> None:
        if response.request.resource_type == "document":
            self.documents.append((response.url, response.headers))
        elif response.status >= 400 and not response.url.endswith("/favicon.ico"):
            self.problems.append(f"HTTP {response.status} for {response.url}")


def _visit(page, url: str) -> None:
    response = page.goto(url)
    assert response is not None and response.status == 200, (url, response and response.status)
    page.wait_for_load_state("networkidle")


def _submit(page, selector: str = "button[type=submit].primary") -> None:
    with page.expect_navigation():
        page.click(selector)
    page.wait_for_load_state("networkidle")


def test_every_page_runs_under_the_csp_without_a_violation(
    page, login, live_server, owner, project, openai_simulator, screenshot
):
    owner.is_staff = owner.is_superuser = True
    owner.save()
    add_project_member(owner, project, "owner")  # the playground lists projects one is a member of
    key = sim_key(project, openai_simulator, name="browser key")
    watch = Watch(page)
    base = live_server.url

    login(owner)
    _visit(page, f"{base}/")
    _visit(page, f"{base}/orgs/{project.organization.public_id}/")
    _visit(page, f"{base}/orgs/{project.organization.public_id}/audit/")
    _visit(page, f"{base}/orgs/{project.organization.public_id}/edit/")
    _visit(page, f"{base}/orgs/{project.organization.public_id}/projects/new/")
    _visit(page, f"{base}/orgs/projects/{project.public_id}/")
    _visit(page, f"{base}/orgs/projects/{project.public_id}/settings/")
    _visit(page, f"{base}/orgs/projects/{project.public_id}/checklist/")
    page.click("button[hx-get]")  # the htmx "Recheck"
    page.wait_for_load_state("networkidle")

    # A key's pages, with the htmx connection test and the one-time pages.
    _visit(page, f"{base}/keys/{key.public_id}/")
    page.click("form[hx-post] button")
    page.wait_for_selector("#test-result")
    _visit(page, f"{base}/keys/{key.public_id}/rotate/")
    _visit(page, f"{base}/keys/{key.public_id}/revoke/")
    _visit(page, f"{base}/keys/{key.public_id}/reveal/")
    page.fill("#id_password", TEST_PASSWORD)
    _submit(page)
    assert "secret-once" in page.content()  # the reveal page, with the value shown once
    _visit(page, f"{base}/keys/projects/{project.public_id}/new/")
    page.fill("#id_name", "created in the browser")
    page.select_option("#id_permissions", "restricted")
    page.fill("#id_secret", "sk-proj-browsertest" + "x" * 24)
    _submit(page)
    assert "secret-once" in page.content()  # the key-created page

    _visit(page, f"{base}/usage/projects/{project.public_id}/")
    _visit(page, f"{base}/usage/projects/{project.public_id}/ingestion-tokens/")

    # The playground with a streamed run (fetch + incremental rendering).
    _visit(page, f"{base}/playground/?project={project.public_id}")
    page.select_option("#id_api_key", str(key.public_id))
    page.select_option("#id_model", "gpt-5.4-mini")
    page.fill("#id_input", "Say hello under a content security policy.")
    assert page.is_checked("#id_stream")
    page.click("#run-button")
    page.wait_for_selector("#result-details")
    assert page.text_content("#result-status") == "completed"
    screenshot("csp-playground-streamed")

    # The Django admin.
    _visit(page, f"{base}/admin/")
    _visit(page, f"{base}/admin/keys/apikey/")
    _visit(page, f"{base}/admin/keys/apikey/{key.pk}/change/")
    _visit(page, f"{base}/admin/keys/apikey/add/")
    _visit(page, f"{base}/admin/orgs/project/{project.pk}/change/")

    _visit(page, f"{base}/accounts/2fa/setup/")  # the QR code (inline SVG)
    with page.expect_navigation():
        page.click("form[action$='/accounts/logout/'] button")

    _visit(page, f"{base}/accounts/login/")
    _visit(page, f"{base}/accounts/password-reset/")
    page.fill("#id_email", owner.email)
    _submit(page)  # the "sent" page
    owner.refresh_from_db()  # the token covers last_login, set by the sign-in above
    uid, token = (
        urlsafe_base64_encode(force_bytes(owner.pk)),
        default_token_generator.make_token(owner),
    )
    _visit(page, f"{base}/accounts/reset/{uid}/{token}/")  # redirects to the set-password form
    page.fill("#id_new_password1", "a new long password 9174")
    page.fill("#id_new_password2", "a new long password 9174")
    _submit(page)  # the "complete" page

    assert not watch.problems, "\n".join(watch.problems)
    assert len(watch.documents) >= 30, [url for url, _ in watch.documents]
    assert watch.documents[-1][0].endswith("/accounts/reset/done/"), watch.documents[-1][0]
    for url, headers in watch.documents:
        assert "content-security-policy" in headers, f"no CSP on {url}"
        directives = _directives(headers["content-security-policy"])
        for name, value in REQUIRED_DIRECTIVES.items():
            assert directives.get(name) == value, (url, name, directives.get(name))
        assert "'unsafe-inline'" not in headers["content-security-policy"], url
        assert headers.get("referrer-policy") in ("same-origin", "strict-origin", "no-referrer"), (
            url
        )
        permissions = headers.get("permissions-policy", "")
        for feature in ("camera=()", "microphone=()", "geolocation=()"):
            assert feature in permissions, (url, feature)


def test_an_inline_style_would_be_reported(page, live_server):
    """The watch itself can fail: a page with an inline style gets a violation."""
    watch = Watch(page)
    _visit(page, f"{live_server.url}/accounts/login/")
    page.evaluate("""() => { const s = document.createElement("style");
                             s.textContent = "body { color: red }"; document.head.append(s); }""")
    page.wait_for_timeout(300)
    assert any("style-src" in problem for problem in watch.problems), watch.problems
