"""platformadmin.openai.services.generate / generate_stream with the real SDK against the simulator."""

from __future__ import annotations

import secrets
from decimal import Decimal

import pytest

from keys.models import APIKey
from keys.services import api_key_secret_for_call
from orgs.models import ProjectModelLimit
from platformadmin.openai import hooks
from platformadmin.openai.client import close_clients
from platformadmin.openai.services import GenerateParams, generate, generate_stream
from platformadmin.openai.simulator import simulated_reply, simulated_usage_counts
from tests.factories import make_api_key
from tests.platformadmin.helpers import sim_key
from usage.models import UsageRecord

pytestmark = pytest.mark.django_db

MODEL = "gpt-5.4-mini"  # priced 0.75 / 0.075 / 4.50 USD per 1M tokens in the seed


def expected_cost(input_tokens, cached, output) -> Decimal:
    cost = (
        Decimal(input_tokens - cached) * Decimal("0.75")
        + Decimal(cached) * Decimal("0.075")
        + Decimal(output) * Decimal("4.50")
    ) / Decimal(1_000_000)
    return cost.quantize(Decimal("1e-10"))


def params(**kw) -> GenerateParams:
    kw.setdefault("model", MODEL)
    kw.setdefault("input", "Write one sentence about the console's budgets, please.")
    return GenerateParams(**kw)


def run_stream(**kw):
    events = list(generate_stream(**kw))
    return events, events[-1].outcome


def test_a_call_returns_text_usage_cost_and_both_request_ids(project, openai_simulator):
    key = sim_key(project, openai_simulator)
    p = params(instructions="Be brief.", reasoning_effort="low")
    outcome = generate(api_key=key, project=project, params=p)

    assert outcome.ok and outcome.status == "completed"
    assert outcome.text == " ".join(
        simulated_reply(model=MODEL, instructions="Be brief.", text=p.input)
    )
    inp, cached, reasoning = simulated_usage_counts(
        instructions="Be brief.", text=p.input, effort="low"
    )
    assert (
        outcome.usage.input_tokens,
        outcome.usage.cached_input_tokens,
        outcome.usage.reasoning_tokens,
    ) == (inp, cached, reasoning)
    seen = openai_simulator.log[-1]
    assert outcome.server_request_id == seen["request_id"]
    assert outcome.client_request_id == seen["client_request_id"]
    assert outcome.retries == 0
    record = UsageRecord.objects.get(project=project)
    assert record.response_id == outcome.response_id
    assert record.server_request_id == outcome.server_request_id
    assert record.client_request_id == outcome.client_request_id
    assert record.api_key == key and record.source == "playground"
    assert record.cost == expected_cost(inp, cached, outcome.usage.output_tokens)
    assert outcome.cost == record.cost


def test_every_call_gets_a_fresh_client_request_id(project, openai_simulator):
    key = sim_key(project, openai_simulator)
    ids = {
        generate(api_key=key, project=project, params=params()).client_request_id for _ in range(3)
    }
    assert len(ids) == 3
    assert {e["client_request_id"] for e in openai_simulator.log} == ids


def test_retries_are_honoured(project, openai_simulator):
    project.max_retries = 3
    project.save()
    outcome = generate(
        api_key=sim_key(project, openai_simulator, "flaky2"), project=project, params=params()
    )
    assert outcome.ok
    assert outcome.retries == 2
    assert openai_simulator.retry_counts == [0, 1, 2]
    assert UsageRecord.objects.get(project=project).retries == 2


def test_retries_stop_at_the_projects_max(project, openai_simulator):
    project.max_retries = 1
    project.save()
    outcome = generate(
        api_key=sim_key(project, openai_simulator, "flaky5"), project=project, params=params()
    )
    assert not outcome.ok and outcome.error_type == "InternalServerError"
    assert openai_simulator.retry_counts == [0, 1]
    assert outcome.retries == 1
    assert "internal error (500) after 1 retry" in outcome.message
    assert outcome.server_request_id in outcome.message


def test_the_timeout_is_the_projects(project, openai_simulator):
    project.request_timeout_seconds = 0.3  # below the form's minimum, to keep the suite fast
    project.max_retries = 0
    project.save()
    outcome = generate(
        api_key=sim_key(project, openai_simulator, "slow"), project=project, params=params()
    )
    assert outcome.error_type == "APITimeoutError"
    assert "within the project's timeout of 0.3 s" in outcome.message
    assert outcome.client_request_id in outcome.message
    record = UsageRecord.objects.get(project=project)
    assert record.status == "error" and record.error_type == "APITimeoutError"
    assert record.input_tokens == 0


@pytest.mark.parametrize(
    ("fault", "overrides", "error_type", "words"),
    [
        ("401", {}, "AuthenticationError", ["(401)", "rotate it or paste the current value"]),
        ("403", {}, "PermissionDeniedError", ["(403)", "Missing scopes", "permissions"]),
        ("429", {}, "RateLimitError", ["(429) after 1 retry", "Retry after 1 s"]),
        ("404", {}, "NotFoundError", ["'gpt-5.4-mini' does not exist", "(404)"]),
        ("500", {}, "InternalServerError", ["internal error (500)", "try again later"]),
        ("", {"temperature": 3.0}, "BadRequestError", ["(400)", "Parameter 'temperature'"]),
    ],
)
def test_each_error_has_a_message_with_the_request_id(
    project, openai_simulator, fault, overrides, error_type, words
):
    project.max_retries = 1
    project.save()
    key = sim_key(project, openai_simulator, fault)
    outcome = generate(api_key=key, project=project, params=params(**overrides))
    assert not outcome.ok and outcome.error_type == error_type
    for word in words:
        assert word in outcome.message
    assert outcome.server_request_id and outcome.server_request_id.startswith("req_")
    assert f"request id {outcome.server_request_id}" in outcome.message
    assert api_key_secret_for_call(key) not in outcome.message
    record = UsageRecord.objects.get(project=project)
    assert (record.status, record.error_type, record.model) == ("error", error_type, MODEL)
    assert record.server_request_id == outcome.server_request_id


def test_the_bad_parameter_is_named(project, openai_simulator):
    outcome = generate(
        api_key=sim_key(project, openai_simulator), project=project, params=params(temperature=5)
    )
    assert outcome.param == "temperature"


def test_a_rate_limit_carries_the_retry_after(project, openai_simulator):
    project.max_retries = 0
    project.save()
    outcome = generate(
        api_key=sim_key(project, openai_simulator, "429"), project=project, params=params()
    )
    assert outcome.retry_after == pytest.approx(0.01)  # the fixture's retry-after-ms


def test_an_unreachable_provider_is_explained(project):
    project.max_retries = 0
    project.save()
    key = sim_key(project, None, base_url="http://127.0.0.1:9/v1")
    outcome = generate(api_key=key, project=project, params=params())
    assert outcome.error_type == "APIConnectionError"
    assert "Could not reach http://127.0.0.1:9/v1" in outcome.message
    assert "request id none (no reply)" in outcome.message


def test_an_undecryptable_key_is_explained_and_nothing_is_sent(project, openai_simulator):
    key = sim_key(project, openai_simulator)
    other = sim_key(project, openai_simulator)
    # A ciphertext copied from another row fails authentication (bound to the row).
    APIKey.objects.filter(pk=key.pk).update(
        secret=APIKey.objects.values_list("secret", flat=True).get(pk=other.pk)
    )
    key.refresh_from_db()
    outcome = generate(api_key=key, project=project, params=params())
    assert outcome.error_type == "SecretUnavailable"
    assert "cannot be decrypted" in outcome.message and "No request was sent" in outcome.message
    assert openai_simulator.requests == 0


def test_a_revoked_key_is_refused(project, openai_simulator):
    key = sim_key(project, openai_simulator)
    key.status = APIKey.Status.REVOKED
    key.save()
    outcome = generate(api_key=key, project=project, params=params())
    assert outcome.status == "refused" and "revoked" in outcome.message
    assert openai_simulator.requests == 0


def test_a_model_outside_the_allow_list_is_refused(project, openai_simulator):
    project.allowed_models = ["gpt-4.1-mini"]
    project.save()
    outcome = generate(api_key=sim_key(project, openai_simulator), project=project, params=params())
    assert outcome.error_type == "ModelNotAllowed"
    assert "Choose one of: gpt-4.1-mini" in outcome.message
    assert openai_simulator.requests == 0


def test_the_output_cap_is_enforced_and_applied(project, openai_simulator):
    project.max_output_tokens = 20
    project.save()
    key = sim_key(project, openai_simulator)
    refused = generate(api_key=key, project=project, params=params(max_output_tokens=50))
    assert refused.error_type == "OutputCapExceeded" and "cap of 20" in refused.message
    generate(api_key=key, project=project, params=params())
    assert openai_simulator.requests == 1


def test_a_budget_hook_can_refuse(project, openai_simulator):
    def deny(context):
        return hooks.HookDecision(False, f"Budget of {context.project.name} is spent.")

    hooks.register_pre_call_hook(deny)
    try:
        outcome = generate(
            api_key=sim_key(project, openai_simulator), project=project, params=params()
        )
    finally:
        hooks.unregister_pre_call_hook(deny)
    assert outcome.error_type == "BudgetExceeded"
    assert "Budget of Production is spent." in outcome.message
    assert openai_simulator.requests == 0


def test_the_projects_rpm_limit_refuses_with_a_clear_message(project, openai_simulator):
    ProjectModelLimit.objects.create(project=project, model_id=MODEL, rpm=2)
    key = sim_key(project, openai_simulator)
    results = [generate(api_key=key, project=project, params=params()) for _ in range(3)]
    assert [r.ok for r in results] == [True, True, False]
    assert results[2].error_type == "ProjectRateLimited"
    assert "limit of 2 requests per minute for gpt-5.4-mini" in results[2].message
    assert openai_simulator.requests == 2


def test_the_projects_tpm_limit_counts_the_output_cap(project, openai_simulator):
    ProjectModelLimit.objects.create(project=project, model_id=MODEL, tpm=100)
    outcome = generate(
        api_key=sim_key(project, openai_simulator),
        project=project,
        params=params(max_output_tokens=200),
    )
    assert outcome.error_type == "ProjectRateLimited"
    assert "limit of 100 tokens per minute" in outcome.message


def test_a_streamed_call_records_its_usage_with_the_right_cost(project, openai_simulator):
    key = sim_key(project, openai_simulator)
    events, outcome = run_stream(api_key=key, project=project, params=params())
    deltas = [e.text for e in events if e.kind == "delta"]
    assert events[0].kind == "start" and len(deltas) >= 8
    assert outcome.ok and outcome.text == "".join(deltas)
    record = UsageRecord.objects.get(project=project)
    assert record.status == "completed"
    assert record.response_id == outcome.response_id
    assert record.server_request_id == openai_simulator.log[-1]["request_id"]
    assert record.cost == expected_cost(
        outcome.usage.input_tokens, outcome.usage.cached_input_tokens, outcome.usage.output_tokens
    )
    assert record.cost > 0


def test_a_stream_cut_upstream_is_recorded_as_incomplete(project, openai_simulator):
    project.max_retries = 0
    project.save()
    events, outcome = run_stream(
        api_key=sim_key(project, openai_simulator, "cut"), project=project, params=params()
    )
    deltas = [e.text for e in events if e.kind == "delta"]
    assert 0 < len(deltas)
    assert outcome.status == "incomplete" and outcome.error_type == "APIConnectionError"
    assert "The stream was cut after" in outcome.message
    assert outcome.text == "".join(deltas)
    record = UsageRecord.objects.get(project=project)
    assert record.status == "incomplete"
    assert record.output_tokens == len(deltas)
    assert record.response_id == outcome.response_id and record.response_id.startswith("resp_")
    assert record.cost > 0  # what was generated is counted, never silently free


def test_a_stream_stopped_by_the_reader_is_recorded(project, openai_simulator):
    openai_simulator.delta_delay = 0.02
    stream = generate_stream(
        api_key=sim_key(project, openai_simulator), project=project, params=params()
    )
    taken = [next(stream) for _ in range(4)]  # start + 3 deltas, then the stop button
    stream.close()
    assert [e.kind for e in taken] == ["start", "delta", "delta", "delta"]
    record = UsageRecord.objects.get(project=project)
    assert (record.status, record.error_type) == ("incomplete", "StreamStopped")
    assert record.output_tokens == 3
    assert record.server_request_id == taken[0].server_request_id


def test_one_connection_pool_serves_every_call(project, openai_simulator):
    close_clients()  # a fresh pool for this process
    openai_simulator.reset()
    keys = [sim_key(project, openai_simulator) for _ in range(4)]
    for i in range(20):
        assert generate(api_key=keys[i % 4], project=project, params=params()).ok
    assert openai_simulator.requests == 20
    assert openai_simulator.connections == 1


def test_azure_keys_use_the_azure_client(project, openai_simulator):
    key = make_api_key(
        project,
        secret=secrets.token_hex(20),
        provider="azure",
        azure_endpoint=openai_simulator.root_url,
        azure_api_version="2024-10-21",
    )
    outcome = generate(api_key=key, project=project, params=params())
    assert outcome.ok, outcome.message
    seen = openai_simulator.log[-1]
    assert seen["azure"] and seen["auth"] == "api-key" and seen["api_version"] == "2024-10-21"
