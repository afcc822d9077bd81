"""OpenAI's spend-limit 429 is explained as a spend limit, not as a rate limit (through the
playground's service, against the simulator's ``fault-spendlimit`` markers)."""

from __future__ import annotations

import openai
import pytest

from platformadmin.openai.admin import is_spend_limit_error
from platformadmin.openai.results import GenerateParams
from platformadmin.openai.services import generate
from tests.platformadmin.helpers import sim_key

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("marker", "scope"), [("spendlimit", "project"), ("orgspendlimit", "organization")]
)
def test_a_spend_limit_429_reads_as_a_spend_limit(openai_simulator, project, marker, scope):
    api_key = sim_key(project, openai_simulator, fault=marker)
    outcome = generate(
        api_key=api_key,
        project=project,
        params=GenerateParams(model="gpt-4.1-mini", input="hello"),
    )
    assert not outcome.ok
    assert f"spend limit of the {scope} is reached" in outcome.message
    assert f"{scope}_spend_limit_exceeded" in outcome.message
    assert "rate-limited" not in outcome.message


def test_a_plain_rate_limit_still_reads_as_a_rate_limit(openai_simulator, project):
    api_key = sim_key(project, openai_simulator, fault="429")
    outcome = generate(
        api_key=api_key,
        project=project,
        params=GenerateParams(model="gpt-4.1-mini", input="hello"),
    )
    assert "rate-limited" in outcome.message and "spend limit" not in outcome.message


def test_the_admin_layer_tells_the_spend_limit_apart(openai_simulator):
    client = openai.OpenAI(
        api_key="sk-test-fault-spendlimit", base_url=openai_simulator.base_url, max_retries=0
    )
    with pytest.raises(openai.RateLimitError) as exc:
        client.responses.create(model="gpt-4.1-mini", input="x")
    client.close()
    assert is_spend_limit_error(exc.value)
