"""The circuit breaker: opens, fails fast, half-opens, closes; shared across processes."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest
import time_machine
from django.test import override_settings

from platformadmin.openai.breaker import CircuitBreaker, breaker_state_for_key
from platformadmin.openai.services import GenerateParams, generate, generate_stream
from platformadmin.openai.simulator import OpenAISimulator
from tests.platformadmin.helpers import sim_key
from usage.models import UsageRecord

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def fast_project(project, settings):
    settings.OPENAI_BREAKER_FAILURE_THRESHOLD = 3
    settings.OPENAI_BREAKER_COOLDOWN_SECONDS = 30
    project.max_retries = 0
    project.save()
    return project


def call(key, project):
    return generate(
        api_key=key, project=project, params=GenerateParams(model="gpt-5.4-mini", input="hi")
    )


def test_it_opens_fails_fast_half_opens_and_closes(fast_project, openai_simulator):
    project = fast_project
    key = sim_key(project, openai_simulator)
    assert breaker_state_for_key(key).state == "closed"

    openai_simulator.force_faults = {"500"}  # an outage
    for n in range(1, 4):
        assert call(key, project).error_type == "InternalServerError"
        assert breaker_state_for_key(key).consecutive_failures == n
    state = breaker_state_for_key(key)
    assert state.state == "open" and state.half_opens_at is not None
    assert state.last_error == "InternalServerError"

    # Open: fail fast, nothing sent, and the page says why and for how long.
    before = openai_simulator.requests
    refused = call(key, project)
    assert refused.error_type == "CircuitOpen"
    assert "circuit breaker" in refused.message and "3 consecutive failures" in refused.message
    assert openai_simulator.requests == before
    assert UsageRecord.objects.filter(project=project).count() == 3  # refusals send nothing

    with time_machine.travel(state.half_opens_at.timestamp() + 1, tick=False):
        assert breaker_state_for_key(key).state == "half-open"
        # The probe fails: open again for another cool-down.
        assert call(key, project).error_type == "InternalServerError"
        assert breaker_state_for_key(key).state == "open"
        reopened = breaker_state_for_key(key).half_opens_at

    openai_simulator.force_faults = set()  # the outage ends
    with time_machine.travel(reopened.timestamp() + 1, tick=False):
        assert breaker_state_for_key(key).state == "half-open"
        assert call(key, project).ok
        state = breaker_state_for_key(key)
        assert (state.state, state.consecutive_failures) == ("closed", 0)


def test_half_open_lets_one_probe_through(fast_project, openai_simulator):
    key = sim_key(fast_project, openai_simulator)
    breaker = CircuitBreaker.for_key(key)
    for _ in range(3):
        breaker.record_failure("APIConnectionError")
    with time_machine.travel(breaker.state().half_opens_at.timestamp() + 1, tick=False):
        breaker.before_call()  # this caller holds the probe
        refused = call(key, fast_project)
        assert refused.error_type == "CircuitOpen" and "half-open" in refused.message


def test_client_errors_do_not_open_it(fast_project, openai_simulator):
    key = sim_key(fast_project, openai_simulator, "401")
    for _ in range(5):
        assert call(key, fast_project).error_type == "AuthenticationError"
    assert breaker_state_for_key(key).state == "closed"


def test_rate_limits_after_retries_and_timeouts_count(fast_project, openai_simulator):
    fast_project.request_timeout_seconds = 0.2
    fast_project.save()
    slow, limited = (
        sim_key(fast_project, openai_simulator, "slow"),
        sim_key(fast_project, openai_simulator, "429"),
    )
    call(slow, fast_project)
    call(limited, fast_project)
    assert breaker_state_for_key(slow).consecutive_failures == 1
    assert breaker_state_for_key(limited).consecutive_failures == 1


def test_it_is_per_key_and_base_url(fast_project, openai_simulator):
    sick, healthy = (
        sim_key(fast_project, openai_simulator, "500"),
        sim_key(fast_project, openai_simulator),
    )
    for _ in range(3):
        call(sick, fast_project)
    assert breaker_state_for_key(sick).state == "open"
    assert breaker_state_for_key(healthy).state == "closed"
    assert call(healthy, fast_project).ok


def test_it_can_be_switched_off_per_project(fast_project, openai_simulator):
    fast_project.circuit_breaker_enabled = False
    fast_project.save()
    key = sim_key(fast_project, openai_simulator, "500")
    for _ in range(5):
        assert call(key, fast_project).error_type == "InternalServerError"
    assert openai_simulator.requests == 5
    assert breaker_state_for_key(key).enabled is False


def _shared_cache_settings(tmp_path) -> dict:
    """Redis when the environment names one (CI), else a file cache: both cross processes."""
    url = os.environ.get("CACHE_URL", "")
    prefix = f"breaker-test-{uuid.uuid4().hex[:8]}"
    if url.startswith(("redis://", "rediss://")):
        backend = {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": url}
    else:
        backend = {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": str(tmp_path / "cache"),
        }
    return {"default": {**backend, "KEY_PREFIX": prefix}}


def test_its_state_is_shared_across_processes(tmp_path, settings):
    settings.OPENAI_BREAKER_FAILURE_THRESHOLD = 3
    caches_conf = _shared_cache_settings(tmp_path)
    base_url, fingerprint = "http://127.0.0.1:1/v1", uuid.uuid4().hex
    script = textwrap.dedent(f"""
        import django, os
        os.environ["DJANGO_SETTINGS_MODULE"] = "tests.settings"
        django.setup()
        from django.test.utils import override_settings
        with override_settings(CACHES={caches_conf!r}, OPENAI_BREAKER_FAILURE_THRESHOLD=3):
            from platformadmin.openai.breaker import CircuitBreaker
            breaker = CircuitBreaker({base_url!r}, {fingerprint!r})
            for _ in range(3):
                breaker.record_failure("APIConnectionError")
            print(breaker.state().state)
    """)
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.stdout.strip() == "open", done.stderr
    with override_settings(CACHES=caches_conf):
        state = CircuitBreaker(base_url, fingerprint).state()
        assert (state.state, state.consecutive_failures) == ("open", 3)
        CircuitBreaker(base_url, fingerprint).record_success()
        assert CircuitBreaker(base_url, fingerprint).state().state == "closed"


# --- streams cut short count as failures (docs/playground.md) --------------------------


def stream(key, project):
    events = list(
        generate_stream(
            api_key=key,
            project=project,
            params=GenerateParams(model="gpt-5.4-mini", input="tell me a long story"),
        )
    )
    return events[-1].outcome


class CleanEndSimulator(OpenAISimulator):
    """The simulator's ``cut`` fault, with the body ended cleanly where it drops the socket:
    a proxy or load balancer that closes the stream in order. The SDK then sees the
    stream end with no terminal event and no connection error."""

    def create_response(self, call, handler) -> None:
        handler.drop_connection = handler.end_chunks
        super().create_response(call, handler)


@pytest.fixture
def clean_end_simulator(settings):
    sim = CleanEndSimulator("127.0.0.1", 0, delta_delay=0.0).start()
    settings.OUTBOUND_ALLOWED_ORIGINS = [sim.root_url]  # loopback: allowed by setting only
    yield sim
    sim.stop()


def test_streams_cut_by_the_simulator_open_the_circuit(fast_project, openai_simulator):
    key = sim_key(fast_project, openai_simulator, "cut")
    for n in range(1, 4):
        outcome = stream(key, fast_project)
        assert (outcome.status, outcome.error_type) == ("incomplete", "APIConnectionError")
        assert breaker_state_for_key(key).consecutive_failures == n
    assert breaker_state_for_key(key).state == "open"
    assert stream(key, fast_project).error_type == "CircuitOpen"


def test_a_stream_ending_without_its_terminal_event_counts_as_a_failure(
    fast_project, clean_end_simulator
):
    key = sim_key(fast_project, clean_end_simulator, "cut")
    breaker = CircuitBreaker.for_key(key)
    breaker.record_failure("InternalServerError")
    breaker.record_failure("InternalServerError")
    outcome = stream(key, fast_project)
    assert (outcome.status, outcome.error_type) == ("incomplete", "StreamEnded")
    state = breaker_state_for_key(key)
    # Before: the cut stream was taken as a success and reset the count to 0.
    assert (state.state, state.consecutive_failures, state.last_error) == ("open", 3, "StreamEnded")
    record = UsageRecord.objects.get(api_key=key)
    assert (record.status, record.error_type) == ("incomplete", "StreamEnded")


def test_a_complete_stream_still_closes_the_circuit(fast_project, openai_simulator):
    key = sim_key(fast_project, openai_simulator)
    CircuitBreaker.for_key(key).record_failure("APIConnectionError")
    assert stream(key, fast_project).status == "completed"
    assert breaker_state_for_key(key).consecutive_failures == 0


# --- the usage page counts cut streams apart from errors -------------------------------


def test_incomplete_streams_are_counted_apart_from_errors(
    fast_project, openai_simulator, client, owner
):
    from django.urls import reverse

    from usage.selectors import project_usage_summary

    assert stream(sim_key(fast_project, openai_simulator), fast_project).status == "completed"
    cut = sim_key(fast_project, openai_simulator, "cut")
    assert [stream(cut, fast_project).status for _ in range(2)] == ["incomplete", "incomplete"]
    assert call(sim_key(fast_project, openai_simulator, "500"), fast_project).status == "error"

    totals = project_usage_summary(project=fast_project).totals
    assert (totals["requests"], totals["errors"], totals["incomplete"]) == (4, 1, 2)
    (by_model,) = project_usage_summary(project=fast_project).by_model
    assert (by_model["errors"], by_model["incomplete"]) == (1, 2)

    client.force_login(owner)
    page = client.get(reverse("usage:project-usage", kwargs={"project_id": fast_project.public_id}))
    assert "4 calls · 1 error · 2 incomplete" in page.content.decode()
