"""The request log, the record page and the CSV exports in Chromium, on the dashboard's
known dataset (tests/dashboard/conftest.py).

The filters are used as a person would (the form's selects and the search box); the
rows shown are compared with the raw records; the downloads are real browser downloads
whose totals row is compared with the totals on the page. No Content-Security-Policy
violation on these pages. Screenshots: test-artifacts/request-log-*.png.
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from tests.dashboard.conftest import dataset, raw_sums  # noqa: F401 (the fixture)
from tests.factories import TEST_PASSWORD, UserFactory, add_org_member, add_project_member

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

NEW_YORK = ZoneInfo("America/New_York")
FIRST, LAST = date(2026, 11, 1), date(2026, 11, 20)
PAGE_WIDTH = "() => Math.max(document.documentElement.scrollWidth, document.body.scrollWidth)"
REPORT_VIOLATIONS = """
document.addEventListener("securitypolicyviolation", (e) => {
  window.__reportViolation(`${e.violatedDirective} blocked ${e.blockedURI || "inline"}`);
});
"""


def _bounds(first: date, last: date) -> dict:
    def midnight(day: date) -> datetime:
        return datetime.combine(day, datetime.min.time(), tzinfo=NEW_YORK).astimezone(UTC)

    return {"start": midnight(first), "end": midnight(last + timedelta(days=1))}


@pytest.fixture
def watched(page):
    problems: list[str] = []
    page.expose_binding("__reportViolation", lambda source, text: problems.append(text))
    page.add_init_script(REPORT_VIOLATIONS)
    page.on("pageerror", lambda exc: problems.append(str(exc)))
    return problems


@pytest.fixture
def users(dataset):  # noqa: F811
    owner = UserFactory(username="log-owner")
    add_org_member(owner, dataset.organization, "owner")
    member = UserFactory(username="log-beta-member")
    add_project_member(member, dataset.beta, "member")
    return {"owner": owner, "member": member}


def _open_log(page, live_server, organization, **params) -> None:
    query = "&".join(f"{k}={v}" for k, v in {"range": "custom", **params}.items())
    page.goto(f"{live_server.url}/dashboard/{organization.public_id}/requests/?{query}")
    page.wait_for_selector("#request-log")


def _shown_records(page) -> list[int]:
    return [
        int(x)
        for x in page.eval_on_selector_all(
            "#request-log tbody tr[data-record]", "rows => rows.map(r => r.dataset.record)"
        )
    ]


def _download_csv(page, selector: str) -> list[list[str]]:
    with page.expect_download() as info:
        page.click(selector)
    download = info.value
    with open(download.path(), encoding="utf-8") as fh:
        return list(csv.reader(io.StringIO(fh.read())))


def test_log_filters_search_pages_and_export(
    page,
    live_server,
    login,
    screenshot,
    dataset,  # noqa: F811
    users,
    watched,
):
    login(users["owner"], TEST_PASSWORD)
    _open_log(page, live_server, dataset.organization, start=FIRST, end=LAST)
    in_range = [
        r
        for r in dataset.records
        if _bounds(FIRST, LAST)["start"] <= r.occurred_at < _bounds(FIRST, LAST)["end"]
    ]
    newest = sorted(in_range, key=lambda r: (r.occurred_at, r.pk), reverse=True)
    assert _shown_records(page) == [r.pk for r in newest[:50]]
    assert page.inner_text("#request-log tbody tr:first-child td.when") == newest[
        0
    ].occurred_at.astimezone(NEW_YORK).strftime("%Y-%m-%d %H:%M:%S")
    screenshot("request-log-first-page")

    # Older, then newer again: the keyset pages.
    page.click("#page-older")
    page.wait_for_selector("#request-log")
    assert _shown_records(page) == [r.pk for r in newest[50:100]]
    page.click("#page-newer")
    page.wait_for_selector("#request-log")
    assert _shown_records(page) == [r.pk for r in newest[:50]]

    # The filters, through the form: project Beta, status incomplete.
    page.select_option("#id_project", str(dataset.beta.public_id))
    page.click("#log-filters button[type=submit]")
    page.wait_for_selector("#request-log")
    beta = [r for r in newest if r.project_id == dataset.beta.pk]
    assert _shown_records(page) == [r.pk for r in beta[:50]]
    assert "range=custom" in page.url and f"project={dataset.beta.public_id}" in page.url
    sums = raw_sums(dataset.records, projects=[dataset.beta], **_bounds(FIRST, LAST))
    assert page.get_attribute("#log-total-requests", "data-value") == str(sums["requests"])
    assert page.get_attribute("#log-total-cost", "data-cost") == str(sums["cost"])

    # Download this view: the totals row equals the page's totals, and the raw sums.
    rows = _download_csv(page, "#export-csv")
    header, *records, total = rows
    totals = dict(zip(header, total, strict=True))
    assert totals["project"] == f"{sums['requests']} requests" and len(records) == sums["requests"]
    assert Decimal(totals["cost (USD)"]) == Decimal(
        page.get_attribute("#log-total-cost", "data-cost")
    )
    assert int(totals["input tokens"]) == sums["input"]
    assert int(totals["total tokens"]) == int(page.get_attribute("#log-total-tokens", "data-value"))
    screenshot("request-log-beta")

    page.select_option("#id_status", "incomplete")
    page.click("#log-filters button[type=submit]")
    page.wait_for_selector("#request-log")
    cut = [r for r in beta if r.status == "incomplete"]
    assert _shown_records(page) == [r.pk for r in cut] and cut
    assert page.is_visible("#no-totals")

    # Search by an id: the record alone, then its page with every field.
    wanted = next(r for r in dataset.records if r.response_id and r.project_id == dataset.alpha.pk)
    page.click("#log-filters >> text=Clear")
    page.wait_for_selector("#request-log")
    page.select_option("#f-range", "custom")
    page.fill("#f-start", FIRST.isoformat())
    page.fill("#f-end", LAST.isoformat())
    page.fill("#id_q", wanted.response_id)
    page.click("#log-filters button[type=submit]")
    page.wait_for_selector("#request-log")
    assert _shown_records(page) == [wanted.pk]
    screenshot("request-log-search")
    page.click("#request-log tbody td.when a")
    page.wait_for_selector("#record-ids")
    assert wanted.response_id in page.inner_text("#record-ids")
    assert page.get_attribute("#record-cost", "data-cost") == str(wanted.cost)
    screenshot("request-log-record")

    # A hostile filter: a clear message naming the field, no table.
    page.goto(
        f"{page.url.split('/dashboard/')[0]}/dashboard/{dataset.organization.public_id}/requests/?cursor=forged&status=boom"
    )
    assert page.is_visible("#filter-errors li[data-field=status]")
    screenshot("request-log-bad-filter")
    assert watched == []


def test_overview_export_downloads_the_overviews_totals(
    page,
    live_server,
    login,
    dataset,  # noqa: F811
    users,
    watched,
):
    login(users["owner"], TEST_PASSWORD)
    page.goto(
        f"{live_server.url}/dashboard/{dataset.organization.public_id}/"
        f"?range=custom&start={FIRST}&end={LAST}"
    )
    page.wait_for_selector("#total-requests")
    header, *days, total = _download_csv(page, "#export-overview-csv")
    totals = dict(zip(header, total, strict=True))
    assert totals[header[0]] == "TOTAL" and len(days) == (LAST - FIRST).days + 1
    assert totals["requests"] == page.get_attribute("#total-requests", "data-value")
    assert Decimal(totals["cost (USD)"]) == Decimal(page.get_attribute("#total-spend", "data-cost"))
    assert totals["unpriced calls"] == page.get_attribute("#total-spend", "data-unpriced")
    sums = raw_sums(dataset.records, **_bounds(FIRST, LAST))
    assert int(totals["requests"]) == sums["requests"]
    assert Decimal(totals["cost (USD)"]) == sums["cost"]
    assert watched == []


def test_a_project_member_sees_and_exports_only_their_project(
    page,
    live_server,
    login,
    screenshot,
    dataset,  # noqa: F811
    users,
):
    login(users["member"], TEST_PASSWORD)
    _open_log(page, live_server, dataset.organization, start=FIRST, end=LAST)
    shown = set(_shown_records(page))
    beta_ids = {r.pk for r in dataset.records if r.project_id == dataset.beta.pk}
    assert shown and shown <= beta_ids
    assert dataset.alpha.name not in page.content()
    assert page.is_visible("#scope-note")
    screenshot("request-log-member")
    header, *records, _total = _download_csv(page, "#export-csv")
    assert {row[header.index("project")] for row in records} == {dataset.beta.name}


def test_the_log_and_the_record_fit_a_phone(
    page,
    live_server,
    login,
    screenshot,
    dataset,  # noqa: F811
    users,
):
    """At 390 px the table scrolls inside its wrapper; the page itself does not."""
    login(users["owner"], TEST_PASSWORD)
    page.set_viewport_size({"width": 390, "height": 844})
    _open_log(page, live_server, dataset.organization, start=FIRST, end=LAST)
    assert page.evaluate(PAGE_WIDTH) <= 390
    times = page.eval_on_selector_all(
        "#request-log td.when a", "links => links.map(a => a.getBoundingClientRect().height)"
    )
    line = page.evaluate("() => parseFloat(getComputedStyle(document.body).lineHeight) || 24")
    assert max(times) < 1.5 * line  # a time stays on one line
    screenshot("request-log-390")
    page.click("#request-log tbody td.when a")
    page.wait_for_selector("#record-ids")
    assert page.evaluate(PAGE_WIDTH) <= 390
    screenshot("request-log-record-390")
