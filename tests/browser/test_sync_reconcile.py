"""The reconciliation page in Chromium: an owner pulls OpenAI's figures with the button and
reads logged vs billed per day, project and model; an unreported call shows as a gap."""

from __future__ import annotations

import pytest
from openai import OpenAI

from platformadmin.openai.results import GenerateParams
from platformadmin.openai.services import generate
from tests.sync.conftest import linked  # noqa: F401  (the fixture, shared with tests/sync)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_an_owner_pulls_and_reads_the_reconciliation(
    page,
    login,
    live_server,
    screenshot,
    linked,  # noqa: F811
    owner,
    settings,
):
    settings.RECONCILIATION_GAP_MIN_USD = (
        "0.000001"  # the simulator's calls cost fractions of a cent
    )
    for i in range(3):
        assert generate(
            api_key=linked.api_key,
            project=linked.project,
            params=GenerateParams(model="gpt-4.1-mini", input=f"question {i}"),
        ).ok
    app = OpenAI(api_key=linked.upstream_key["value"], base_url=linked.simulator.base_url)
    app.responses.create(model="gpt-5.4-mini", input="an application that does not report " * 8)
    app.close()

    login(owner)
    page.goto(f"{live_server.url}/sync/{linked.organization.public_id}/reconciliation/")
    assert "Nothing logged or pulled" not in page.content()  # the logged side is there already
    page.click("button:has-text('Pull now from OpenAI')")
    page.wait_for_load_state("networkidle")
    assert "usage and costs" in page.locator(".messages").inner_text()
    rows = page.locator("#reconciliation tbody tr")
    assert rows.count() == 2
    reported = page.locator("#reconciliation tr[data-model='gpt-4.1-mini']").inner_text()
    assert "3 / 3" in reported and "$0.00" in reported
    missing = page.locator("#reconciliation tr[data-model='gpt-5.4-mini']")
    assert "0 / 1" in missing.inner_text()
    assert "flagged" in (missing.get_attribute("class") or "")
    assert linked.project.name in page.locator("#gaps").inner_text()
    screenshot("sync-reconciliation")

    page.set_viewport_size({"width": 390, "height": 844})
    page.reload()
    page.wait_for_load_state("networkidle")
    width = page.evaluate(
        "Math.max(document.documentElement.scrollWidth, document.body.scrollWidth)"
    )
    assert width <= 390 + 1, f"the page scrolls sideways at 390 px ({width} px wide)"
    screenshot("sync-reconciliation-390")
