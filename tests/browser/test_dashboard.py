"""The usage dashboard in Chromium, on the known dataset of tests/dashboard/conftest.py.

Totals and the chart's numbers are read from the DOM and compared with sums computed
here from the raw records; changing the range (the form) and the project filter (the
select) changes them as the records say; a project member sees only their project;
no Content-Security-Policy violation on any dashboard page (the chart is inline SVG).
Screenshots: test-artifacts/dashboard-*.png.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from platformadmin.dashboard.ranges import parse_range
from platformadmin.templatetags.console_format import format_money
from tests.dashboard.conftest import make_dataset, raw_sums
from tests.factories import TEST_PASSWORD, UserFactory, add_org_member, add_project_member

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

NEW_YORK = ZoneInfo("America/New_York")
REPORT_VIOLATIONS = """
document.addEventListener("securitypolicyviolation", (e) => {
  window.__reportViolation(`${e.violatedDirective} blocked ${e.blockedURI || "inline"}`);
});
"""


def _midnight(day: date) -> datetime:
    return datetime.combine(day, datetime.min.time(), tzinfo=NEW_YORK).astimezone(UTC)


def _between(first: date, last: date) -> dict:
    return {"start": _midnight(first), "end": _midnight(last + timedelta(days=1))}


@pytest.fixture
def dataset(organization, project, api_key):
    return make_dataset(organization, project, api_key)


@pytest.fixture
def watched(page):
    problems: list[str] = []
    page.expose_binding("__reportViolation", lambda source, text: problems.append(text))
    page.add_init_script(REPORT_VIOLATIONS)
    page.on("pageerror", lambda exc: problems.append(str(exc)))
    return problems


@pytest.fixture
def users(dataset):
    owner = UserFactory(username="dash-owner")
    add_org_member(owner, dataset.organization, "owner")
    member = UserFactory(username="dash-beta-member")
    add_project_member(member, dataset.beta, "member")
    return {"owner": owner, "member": member}


def _figure(page, element_id: str, attr: str = "data-value") -> str:
    return page.get_attribute(f"#{element_id}", attr)


def _per_day_by_project(records, projects, first: date, last: date) -> dict:
    """{(local day, project name): exact cost} of the priced records."""
    names = {p.pk: p.name for p in projects}
    out: dict = defaultdict(Decimal)
    for r in records:
        day = r.occurred_at.astimezone(NEW_YORK).date()
        if first <= day <= last and r.cost is not None and r.project_id in names:
            out[(day, names[r.project_id])] += r.cost
    return out


def test_overview_totals_chart_range_and_project_filter(
    page, live_server, login, screenshot, dataset, users, watched
):
    login(users["owner"], TEST_PASSWORD)
    page.click("nav.mainnav >> text=Usage")
    page.wait_for_selector("#total-requests")
    assert f"/dashboard/{dataset.organization.public_id}/" in page.url
    screenshot("dashboard-overview-this-month")

    first, last = date(2026, 11, 1), date(2026, 11, 20)
    page.fill("#range-start", first.isoformat())
    page.fill("#range-end", last.isoformat())
    page.click("#range-form button[type=submit]")
    page.wait_for_load_state("networkidle")
    assert "range=custom" in page.url  # the range stays in the URL
    sums = raw_sums(dataset.records, **_between(first, last))
    assert _figure(page, "total-requests") == str(sums["requests"])
    assert _figure(page, "total-spend", "data-cost") == str(sums["cost"])
    assert _figure(page, "total-spend", "data-unpriced") == str(sums["unpriced"])
    assert _figure(page, "total-incomplete") == str(sums["incomplete"])
    assert _figure(page, "total-errors") == str(sums["errors"])
    assert page.inner_text("#tokens-input") == f"{sums['input']:,}"
    assert page.inner_text("#tokens-cached") == f"{sums['cached']:,}"
    assert page.inner_text("#tokens-reasoning") == f"{sums['reasoning']:,}"
    assert "unpriced call" in page.inner_text("#total-spend")

    # The chart's bars carry the exact amounts of each day and project, as the table does.
    expected = _per_day_by_project(dataset.records, [dataset.alpha, dataset.beta], first, last)
    bars = [
        t
        for t in page.eval_on_selector_all(
            "#spend-chart svg .series desc.value", "els => els.map(e => e.textContent)"
        )
        if t
    ]
    assert sorted(bars) == sorted(format_money(v) for v in expected.values())
    cells = page.eval_on_selector_all(
        "#per-day tbody tr",
        """rows => rows.map(r => [r.dataset.day,
             [...r.querySelectorAll('td[data-cost]')].map(td => td.dataset.cost)])""",
    )
    headers = page.eval_on_selector_all(
        "#per-day thead th[data-stack]", "ths => ths.map(t => t.dataset.stack)"
    )
    assert len(cells) == 20
    for day, values in cells:
        for name, value in zip(headers, values, strict=False):
            want = expected.get((date.fromisoformat(day), name))
            assert (Decimal(value) if value else None) == want, (day, name)
    screenshot("dashboard-overview-custom-range")

    # The project filter narrows every figure to that project, and keeps the range.
    page.select_option("#project-filter", str(dataset.beta.public_id))
    page.click("#range-form button[type=submit]")
    page.wait_for_load_state("networkidle")
    beta = raw_sums(dataset.records, projects=[dataset.beta], **_between(first, last))
    assert _figure(page, "total-requests") == str(beta["requests"])
    assert _figure(page, "total-spend", "data-cost") == str(beta["cost"])
    assert beta["requests"] < sums["requests"]

    # Stacked by model instead: the toggle keeps range and project.
    page.click("nav.toggle >> text=by model")
    page.wait_for_load_state("networkidle")
    assert "by=model" in page.url and "range=custom" in page.url
    headers = page.eval_on_selector_all(
        "#per-day thead th[data-stack]", "ths => ths.map(t => t.dataset.stack)"
    )
    assert set(headers) <= {"gpt-4.1", "gpt-4.1-mini", "custom-unpriced-model"}
    assert _figure(page, "total-requests") == str(beta["requests"])
    screenshot("dashboard-overview-beta-by-model")

    # A preset: last month (of today, in the billing timezone), project kept.
    page.click("nav.presets >> text=Last month")
    page.wait_for_load_state("networkidle")
    rng, _ = parse_range({"range": "last-month"}, organization=dataset.organization)
    beta = raw_sums(dataset.records, projects=[dataset.beta], start=rng.start, end=rng.end)
    assert _figure(page, "total-requests") == str(beta["requests"])
    assert watched == []


def test_drill_downs(page, live_server, login, screenshot, dataset, users, watched):
    login(users["owner"], TEST_PASSWORD)
    query = "?range=custom&start=2026-11-01&end=2026-11-20"
    page.goto(f"{live_server.url}/orgs/projects/{dataset.alpha.public_id}/")
    page.click("#project-usage-dashboard")
    page.wait_for_selector("#total-requests")
    page.goto(f"{live_server.url}/dashboard/projects/{dataset.alpha.public_id}/{query}")
    alpha = raw_sums(
        dataset.records, projects=[dataset.alpha], **_between(date(2026, 11, 1), date(2026, 11, 20))
    )
    assert _figure(page, "total-requests") == str(alpha["requests"])
    assert _figure(page, "total-spend", "data-cost") == str(alpha["cost"])
    models = page.eval_on_selector_all(
        "#models tbody tr[data-model]", "rs => rs.map(r => r.dataset.model)"
    )
    assert "gpt-4.1" in models
    screenshot("dashboard-project")

    # One click from the key row to the key's own page, the range kept.
    page.click(f"#top-keys >> text={dataset.alpha_key.name}")
    page.wait_for_selector("#total-requests")
    assert "range=custom" in page.url
    key = raw_sums(
        dataset.records, key=dataset.alpha_key, **_between(date(2026, 11, 1), date(2026, 11, 20))
    )
    assert _figure(page, "total-requests") == str(key["requests"])
    assert _figure(page, "total-spend", "data-cost") == str(key["cost"])
    screenshot("dashboard-key")
    assert watched == []


def test_a_project_member_sees_only_their_project(
    page, live_server, login, screenshot, dataset, users, watched
):
    login(users["member"], TEST_PASSWORD)
    page.goto(
        f"{live_server.url}/dashboard/{dataset.organization.public_id}/"
        "?range=custom&start=2026-11-01&end=2026-11-20"
    )
    beta = raw_sums(
        dataset.records, projects=[dataset.beta], **_between(date(2026, 11, 1), date(2026, 11, 20))
    )
    assert _figure(page, "total-requests") == str(beta["requests"])
    assert _figure(page, "total-spend", "data-cost") == str(beta["cost"])
    assert dataset.alpha.name not in page.content()
    assert page.is_visible("#scope-note")
    screenshot("dashboard-overview-project-member")
    assert watched == []


def test_phone_width_has_no_sideways_page(page, live_server, login, screenshot, dataset, users):
    """At 390 px the tables scroll in their wrappers; the page itself never scrolls sideways."""
    login(users["owner"], TEST_PASSWORD)
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(
        f"{live_server.url}/dashboard/{dataset.organization.public_id}/"
        "?range=custom&start=2026-11-01&end=2026-11-20"
    )
    width = page.evaluate(
        "() => Math.max(document.documentElement.scrollWidth, document.body.scrollWidth)"
    )
    assert width <= 390
    screenshot("dashboard-overview-390")
