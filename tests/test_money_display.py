"""Money reads as money and counts have thousands separators on every console page (issue 9).

Each test renders a real page with real usage records (priced and unpriced) and looks for
the formatted figure, and for the raw one that used to show.
"""

from __future__ import annotations

import datetime as dt
import html
import re

import pytest
import time_machine
from django.urls import reverse

from orgs.models import ProjectModelLimit
from tests.usage.conftest import response_json
from usage.services import usage_record_create

pytestmark = pytest.mark.django_db

NOW = dt.datetime(2026, 7, 15, 12, 0, tzinfo=dt.UTC)


def _text(html: str) -> str:
    """The page's text with tags dropped and whitespace squeezed (what a person reads)."""
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def _record(
    project, rid: str, *, model: str = "gpt-5.5", inp: int = 80229, out: int = 500, api_key=None
):
    """A priced (gpt-5.5) or unpriced (an uncatalogued model) call, a few days ago."""
    if model == "gpt-5.5":
        return usage_record_create(
            project=project,
            api_key=api_key,
            source="playground",
            response=response_json(
                rid, inp=inp, out=out, created_at=(NOW - dt.timedelta(days=2)).timestamp()
            ),
        )
    return usage_record_create(
        project=project,
        source="ingest",
        model=model,
        response_id=rid,
        occurred_at=NOW - dt.timedelta(days=2),
        usage={"input_tokens": inp, "output_tokens": out},
    )


@pytest.fixture
def frozen():
    with time_machine.travel(NOW, tick=False):
        yield


def test_the_organization_headline_is_dollars_and_cents(
    client, owner, organization, project, frozen
):
    _record(project, "resp_a")
    _record(project, "resp_b", model="tts-1")
    client.force_login(owner)
    html = client.get(
        reverse("orgs:organization-detail", kwargs={"org_id": organization.public_id})
    ).content.decode()
    spend = _text(re.search(r'id="spend-mtd".*?</div>', html, re.S).group(0))
    # 80,229 input (200 cached) + 500 output tokens of gpt-5.5: about 40 cents, never 16 decimals
    assert re.search(r"\$0\.\d\d(?!\d)", spend), spend
    assert not re.search(r"\d\.\d{5,}", spend), spend
    assert "1 unpriced call" in spend
    tier = _text(re.search(r"Tier</div>.*?</div>", html, re.S).group(0))
    assert re.search(r"\d{1,3}(,\d{3})+ TPM", tier), tier


def test_the_usage_page_formats_money_and_counts(client, owner, project, api_key, frozen):
    _record(project, "resp_a", api_key=api_key)
    _record(project, "resp_b", model="tts-1", inp=1234567)
    client.force_login(owner)
    html = client.get(
        reverse("usage:project-usage", kwargs={"project_id": project.public_id})
    ).content.decode()
    text = _text(html)
    assert "80,229" in text and "1,234,567" in text
    assert "80229" not in text and "1234567" not in text
    assert not re.search(r"\$\d+\.\d{5,}", text), "a cost with more than four decimals"
    assert not re.search(r"\$0\.0+(?!\d)", text), "a $0 figure"


def test_an_unpriced_model_row_says_unpriced_not_zero_dollars(client, owner, project, frozen):
    _record(project, "resp_b", model="tts-1")
    _record(project, "resp_c", model="tts-1")
    client.force_login(owner)
    html = client.get(
        reverse("usage:project-usage", kwargs={"project_id": project.public_id})
    ).content.decode()
    row = _text(re.search(r"<tr><td class=\"nowrap\">tts-1</td>.*?</tr>", html, re.S).group(0))
    assert "unpriced" in row and "$" not in row, row
    month = _text(re.search(r"<h2>This month</h2>.*?</div>", html, re.S).group(0))
    assert "2 unpriced calls" in month and "$" not in month, month


def test_a_mixed_row_is_dollars_plus_unpriced_calls(client, owner, project, frozen):
    _record(project, "resp_a")
    _record(project, "resp_b", model="tts-1")
    client.force_login(owner)
    html = client.get(
        reverse("usage:project-usage", kwargs={"project_id": project.public_id})
    ).content.decode()
    month = _text(re.search(r"<h2>This month</h2>.*?</div>", html, re.S).group(0))
    assert re.search(r"\$0\.\d\d \+ 1 unpriced call(?!s)", month), month


def test_the_project_page_formats_limits_and_caps(client, owner, organization, project):
    organization.tier = "tier_4"
    organization.save()
    project.max_output_tokens = 16000
    project.save()
    ProjectModelLimit.objects.create(project=project, model_id="gpt-5.5", rpm=10000, tpm=2000000)
    client.force_login(owner)
    text = _text(
        client.get(
            reverse("orgs:project-detail", kwargs={"project_id": project.public_id})
        ).content.decode()
    )
    assert "2,000,000" in text and "10,000" in text and "16,000" in text
    assert f"{organization.default_tpm:,} TPM" in text
    assert "2000000" not in text and "16000" not in text


def test_the_playground_shows_the_output_cap_with_separators(client, project, api_key, member):
    project.max_output_tokens = 8192
    project.save(update_fields=["max_output_tokens"])
    client.force_login(member)
    page = client.get(reverse("playground:index"), {"project": project.public_id}).content.decode()
    text = html.unescape(_text(page))
    assert "At most 8,192 (the project's cap)" in text and "capped at 8,192 tokens" in text
    assert "8192" not in text
