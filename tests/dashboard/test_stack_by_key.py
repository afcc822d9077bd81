"""The project drill-down's chart stacked by key (its "by key" toggle answered 500: the
per-day series knew project and model only), and the record page's exact figures kept as
data (in <code>), the readable ones formatted."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
import time_machine
from django.urls import reverse

from tests.dashboard.conftest import NOW

pytestmark = pytest.mark.django_db


@pytest.fixture
def at_now():
    with time_machine.travel(NOW, tick=False):
        yield


def test_project_chart_stacked_by_key_adds_up(client, owner, dataset, at_now):
    client.force_login(owner)
    url = reverse("dashboard:project", kwargs={"project_id": dataset.alpha.public_id})
    by_model = client.get(url, {"by": "model"})
    assert by_model.status_code == 200
    toggle = re.search(r'href="([^"]*)" data-by="key"', by_model.content.decode())
    assert toggle, "the project page offers the key stack"
    response = client.get(url + toggle.group(1).replace("&amp;", "&"))
    assert response.status_code == 200
    html = response.content.decode()
    table = html.split('id="per-day"', 1)[1].split("</table>", 1)[0]
    header = table.split("</thead>", 1)[0]
    assert dataset.alpha_key.name in header  # the stack is named after the key
    assert dataset.beta_key.name not in header  # another project's key is not in it
    days = re.findall(r'class="num day-total" data-cost="([^"]*)"', table)
    total = sum((Decimal(c) for c in days if c), Decimal(0))
    spend = re.search(r'id="total-spend"[^>]*?data-cost="([^"]*)"', html).group(1)
    assert str(total) == spend


def test_overview_refuses_the_key_stack_with_a_message(client, owner, dataset, at_now):
    """The organization overview stacks by project or model only: the page says so (as for
    every bad filter), never a 500."""
    client.force_login(owner)
    url = reverse("dashboard:overview", kwargs={"org_id": dataset.organization.public_id})
    response = client.get(url, {"by": "key"})
    assert response.status_code == 200
    assert 'id="filter-errors"' in response.content.decode()


def test_record_page_keeps_exact_figures_as_data(client, owner, dataset, at_now):
    client.force_login(owner)
    record = next(r for r in dataset.records if r.cost)
    url = reverse(
        "dashboard:record-detail",
        kwargs={"org_id": dataset.organization.public_id, "record_id": record.pk},
    )
    html = client.get(url).content.decode()
    assert f"<code>{record.cost}</code> USD" in html
    assert re.search(r"<code>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}</code> UTC", html)
