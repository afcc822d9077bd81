"""The organization overview and the drill-downs: totals against sums of the raw records,
the range and project filters, who sees what, bad parameters, queries per page."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Decimal

import pytest
import time_machine
from django.conf import settings
from django.urls import reverse

from tests.dashboard.conftest import NOW, raw_sums
from tests.factories import UserFactory, add_project_member
from usage.models import Budget

pytestmark = pytest.mark.django_db

NOV_START = datetime(2026, 11, 1, 4, tzinfo=UTC)  # midnight in New York (EDT)
NOV_END = datetime(2026, 11, 21, 5, tzinfo=UTC)  # midnight after 20 Nov (EST)


def figure(html: str, element_id: str, attr: str = "data-value") -> str:
    match = re.search(rf'id="{element_id}"[^>]*?{attr}="([^"]*)"', html)
    assert match, f"#{element_id} [{attr}] not on the page"
    return match.group(1)


@pytest.fixture
def at_now():
    with time_machine.travel(NOW, tick=False):
        yield


def overview(client, org, **params):
    return client.get(reverse("dashboard:overview", kwargs={"org_id": org.public_id}), params)


def test_overview_totals_equal_the_raw_records(client, owner, dataset, at_now):
    client.force_login(owner)
    response = overview(client, dataset.organization)
    assert response.status_code == 200
    html = response.content.decode()
    sums = raw_sums(dataset.records, start=NOV_START, end=NOV_END)
    assert figure(html, "total-requests") == str(sums["requests"])
    assert figure(html, "total-spend", "data-cost") == str(sums["cost"])
    assert figure(html, "total-spend", "data-unpriced") == str(sums["unpriced"]) == "2"
    assert figure(html, "total-errors") == str(sums["errors"]) == "1"
    assert figure(html, "total-incomplete") == str(sums["incomplete"]) == "2"
    assert figure(html, "total-tokens") == str(sums["total"])
    assert "unpriced call" in html


def test_the_late_evening_call_counts_on_its_local_day(client, owner, dataset, at_now):
    client.force_login(owner)
    html = overview(
        client, dataset.organization, range="custom", start="2026-11-19", end="2026-11-19"
    ).content.decode()
    sums = raw_sums(
        dataset.records,
        start=datetime(2026, 11, 19, 5, tzinfo=UTC),
        end=datetime(2026, 11, 20, 5, tzinfo=UTC),
    )
    assert figure(html, "total-requests") == str(sums["requests"]) == "5"  # 4 at noon + 23:30


def test_range_changes_the_totals(client, owner, dataset, at_now):
    client.force_login(owner)
    html = overview(client, dataset.organization, range="last-month").content.decode()
    sums = raw_sums(
        dataset.records,
        start=datetime(2026, 10, 1, 4, tzinfo=UTC),
        end=NOV_START,
    )
    assert figure(html, "total-requests") == "1" == str(sums["requests"])
    assert figure(html, "total-spend", "data-cost") == str(sums["cost"])


def test_project_filter(client, owner, dataset, at_now):
    client.force_login(owner)
    html = overview(
        client, dataset.organization, project=str(dataset.beta.public_id)
    ).content.decode()
    sums = raw_sums(dataset.records, start=NOV_START, end=NOV_END, projects=[dataset.beta])
    assert figure(html, "total-requests") == str(sums["requests"])
    assert figure(html, "total-spend", "data-cost") == str(sums["cost"])


def test_per_day_table_adds_up_to_the_total(client, owner, dataset, at_now):
    client.force_login(owner)
    html = overview(client, dataset.organization, by="model").content.decode()
    table = html.split('id="per-day"', 1)[1].split("</table>", 1)[0]
    days = re.findall(r'class="num day-total" data-cost="([^"]*)"', table)
    assert len(days) == 20

    total = sum((Decimal(c) for c in days if c), Decimal(0))
    assert str(total) == figure(html, "total-spend", "data-cost")


def test_project_member_sees_only_their_projects(client, dataset, at_now):
    user = UserFactory(username="betamember")
    add_project_member(user, dataset.beta, "member")
    client.force_login(user)
    html = overview(client, dataset.organization).content.decode()
    sums = raw_sums(dataset.records, start=NOV_START, end=NOV_END, projects=[dataset.beta])
    assert figure(html, "total-requests") == str(sums["requests"])
    assert dataset.alpha.name not in html
    assert 'id="scope-note"' in html
    # asking for the other project by id gives a message, not its figures
    html = overview(
        client, dataset.organization, project=str(dataset.alpha.public_id)
    ).content.decode()
    assert 'data-field="project"' in html
    assert figure(html, "total-requests") == str(sums["requests"])


@pytest.mark.parametrize(
    "params",
    [
        {"range": "weird"},
        {"range": "custom", "start": "2026-13-01", "end": "x"},
        {"by": "colour"},
        {"project": "not-a-uuid"},
        {"project": "00000000-0000-0000-0000-000000000000"},
        {"range": "custom", "start": "1900-01-01", "end": "2026-01-01"},
    ],
)
def test_bad_parameters_get_a_message_naming_them(client, owner, dataset, at_now, params):
    client.force_login(owner)
    response = overview(client, dataset.organization, **params)
    assert response.status_code == 200
    assert 'id="filter-errors"' in response.content.decode()


def test_project_and_key_drill_downs(client, member, dataset, at_now):
    client.force_login(member)
    response = client.get(
        reverse("dashboard:project", kwargs={"project_id": dataset.alpha.public_id})
    )
    assert response.status_code == 200
    html = response.content.decode()
    sums = raw_sums(dataset.records, start=NOV_START, end=NOV_END, projects=[dataset.alpha])
    assert figure(html, "total-requests") == str(sums["requests"])
    assert figure(html, "total-spend", "data-cost") == str(sums["cost"])
    response = client.get(reverse("dashboard:key", kwargs={"key_id": dataset.alpha_key.public_id}))
    html = response.content.decode()
    sums = raw_sums(dataset.records, start=NOV_START, end=NOV_END, key=dataset.alpha_key)
    assert figure(html, "total-requests") == str(sums["requests"])
    assert figure(html, "total-spend", "data-cost") == str(sums["cost"])
    # the other project's pages are not theirs
    assert (
        client.get(
            reverse("dashboard:project", kwargs={"project_id": dataset.beta.public_id})
        ).status_code
        == 404
    )
    assert (
        client.get(
            reverse("dashboard:key", kwargs={"key_id": dataset.beta_key.public_id})
        ).status_code
        == 404
    )


def test_outsider_gets_404(client, outsider, dataset):
    client.force_login(outsider)
    assert overview(client, dataset.organization).status_code == 404


def test_chart_is_inline_svg_without_inline_style_or_script(client, owner, dataset, at_now):
    client.force_login(owner)
    html = overview(client, dataset.organization).content.decode()
    svg = html.split('id="spend-chart"', 1)[1].split("</figure>", 1)[0]
    assert "<svg" in svg
    assert "<style" not in svg and "<script" not in svg and "style=" not in svg


def test_chart_keeps_each_bars_amount_and_drops_tooltip_positions(client, owner, dataset, at_now):
    client.force_login(owner)
    html = overview(client, dataset.organization).content.decode()
    svg = html.split('id="spend-chart"', 1)[1].split("</figure>", 1)[0]
    bars = re.findall(r'<g class="bar">(.*?)</g>', svg)
    assert bars
    for bar in bars:  # one rect (geometry to 1/100 px) and its exact amount, nothing else
        assert re.fullmatch(
            r'<rect x="[\d.-]+\.\d\d" y="[\d.-]+\.\d\d" rx="0" ry="0" width="[\d.]+\.\d\d"'
            r' height="[\d.]+\.\d\d" class="rect reactive tooltip-trigger" />'
            r'<desc class="value">\$[\d,.]+</desc>',
            bar,
        ), bar
    assert "<title>Pygal</title>" not in svg
    assert "<title>Spend per day by project, " in svg


def test_a_range_without_priced_usage_says_so_instead_of_an_axis_of_zeros(
    client, owner, dataset, at_now
):
    client.force_login(owner)
    html = overview(
        client, dataset.organization, range="custom", start="2026-01-01", end="2026-01-31"
    ).content.decode()
    svg = html.split('id="spend-chart"', 1)[1].split("</figure>", 1)[0]
    assert 'class="no_data">No priced usage in this range</text>' in svg
    assert ">$0<" not in svg
    # static/dashboard.css hides the value labels of the overlay, not the "no data" text.
    css = (settings.BASE_DIR / "static" / "dashboard.css").read_text()
    assert ".text-overlay .series { display:none; }" in css
    assert ".text-overlay {" not in css


def test_month_to_date_against_the_budget(client, owner, dataset, at_now):

    Budget.objects.create(organization=dataset.organization, amount=Decimal("1000"))
    client.force_login(owner)
    html = overview(client, dataset.organization).content.decode()
    line = re.search(r'id="budget-line">([^<]*)', html).group(1)
    assert "of $1,000.00 budget" in line and "forecast" in line


def test_project_member_does_not_see_the_organization_budget(client, dataset, at_now):

    Budget.objects.create(organization=dataset.organization, amount=Decimal("1000"))
    user = UserFactory(username="betamember2")
    add_project_member(user, dataset.beta, "member")
    client.force_login(user)
    html = overview(client, dataset.organization).content.decode()
    assert "$1,000.00" not in html and 'id="budget-line"' not in html


def test_rows_link_to_the_filtered_request_log(client, owner, dataset, at_now):
    client.force_login(owner)
    html = overview(client, dataset.organization, range="7d").content.decode()
    log = reverse("dashboard:request-log", kwargs={"org_id": dataset.organization.public_id})
    links = re.findall(rf'href="({re.escape(log)}[^"]*)"', html)
    assert any("model=gpt-4.1-mini" in link and "range=7d" in link for link in links)
    assert any(f"project={dataset.beta.public_id}" in link for link in links)
    assert any(f"key={dataset.alpha_key.public_id}" in link for link in links)
    assert any("status=incomplete" in link for link in links)
    for link in links[:6]:
        assert client.get(link.replace("&amp;", "&")).status_code == 200
