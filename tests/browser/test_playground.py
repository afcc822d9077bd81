"""A streamed playground call in Chromium: text arrives in steps, usage is recorded."""

from __future__ import annotations

import pytest

from platformadmin.openai.simulator import simulated_reply
from tests.conftest import ensure_catalog
from tests.platformadmin.helpers import sim_key
from usage.models import UsageRecord

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# Records the length of the output each time the browser renders a change; a reply
# buffered whole would show up as a single step.
WATCH_OUTPUT = """
() => {
  window.__steps = [];
  const out = document.getElementById("output");
  new MutationObserver(() => window.__steps.push(out.textContent.length))
    .observe(out, {childList: true, subtree: true, characterData: true});
}
"""


@pytest.fixture(autouse=True)
def _catalog(transactional_db):
    ensure_catalog()


def test_a_streamed_call_shows_text_in_steps_and_lands_in_usage(
    page, login, live_server, member, project, openai_simulator, screenshot
):
    openai_simulator.delta_delay = 0.05
    key = sim_key(project, openai_simulator, name="browser key")
    login(member)
    page.goto(f"{live_server.url}/playground/?project={project.public_id}")
    page.select_option("#id_api_key", str(key.public_id))
    page.select_option("#id_model", "gpt-5.4-mini")
    page.fill("#id_input", "Summarize what the console does with budgets.")
    assert page.is_checked("#id_stream")
    page.evaluate(WATCH_OUTPUT)

    page.click("#run-button")
    page.wait_for_selector("#result-details", timeout=15_000)
    screenshot("playground-streamed")

    steps = page.evaluate("window.__steps")
    assert len(set(steps)) >= 3, steps  # several renders while the text arrived
    record = UsageRecord.objects.get(project=project)
    assert record.status == "completed" and record.source == "playground"
    expected = simulated_reply(
        model="gpt-5.4-mini", instructions="", text="Summarize what the console does with budgets."
    )
    assert page.text_content("#output") == " ".join(expected)
    assert page.text_content("#server-request-id") == record.server_request_id
    assert page.text_content("#result-status") == "completed"

    page.click("#usage-link")
    page.wait_for_load_state("networkidle")
    assert record.server_request_id in page.content()
    assert key.hint in page.content()
    screenshot("playground-usage")


def test_a_call_without_streaming_swaps_in_the_result_without_a_reload(
    page, login, live_server, member, project, openai_simulator
):
    key = sim_key(project, openai_simulator)
    login(member)
    page.goto(f"{live_server.url}/playground/?project={project.public_id}")
    page.evaluate("window.__sameDocument = true")  # gone if the browser loaded a new page
    page.select_option("#id_api_key", str(key.public_id))
    page.select_option("#id_model", "gpt-5.4-mini")
    page.fill("#id_input", "No streaming this time.")
    page.uncheck("#id_stream")
    page.click("#run-button")
    page.wait_for_selector("#result-details", timeout=15_000)
    assert page.evaluate("window.__sameDocument") is True
    record = UsageRecord.objects.get(project=project)
    expected = simulated_reply(
        model="gpt-5.4-mini", instructions="", text="No streaming this time."
    )
    assert page.text_content("#output") == " ".join(expected)
    assert page.text_content("#server-request-id") == record.server_request_id
    assert page.text_content("#stream-status") == "Done."

    page.fill("#id_input", "")
    page.click("#run-button")
    page.wait_for_selector("#field-input .errors")
    assert "Enter the input" in page.text_content("#field-input .errors")
    assert UsageRecord.objects.filter(project=project).count() == 1


def test_the_stop_button_keeps_the_text_and_records_an_incomplete_call(
    page, login, live_server, member, project, openai_simulator
):
    openai_simulator.delta_delay = 0.3  # slow enough to press Stop mid-way
    key = sim_key(project, openai_simulator)
    login(member)
    page.goto(f"{live_server.url}/playground/?project={project.public_id}")
    page.select_option("#id_api_key", str(key.public_id))
    page.fill("#id_input", "A long answer, please.")
    page.click("#run-button")
    page.wait_for_selector(
        "#output:not(:empty)"
    )  # (wait_for_function would need the CSP's unsafe-eval)
    page.click("#stop-button")
    page.wait_for_selector("#result-details", timeout=15_000)
    assert page.text_content("#output")
    # The page shows what the server recorded, once it has.
    record = UsageRecord.objects.get(project=project)
    assert (record.status, record.error_type) == ("incomplete", "StreamStopped")
    assert page.text_content("#stream-status").startswith(
        "Stopped. The server recorded the call as incomplete"
    )
    assert page.text_content("#result-status") == "incomplete"
    assert page.text_content("#client-request-id") == record.client_request_id
    assert page.text_content("#server-request-id") == record.server_request_id


def test_stop_before_the_model_answers_records_the_call_and_says_so(
    page, login, live_server, member, project, openai_simulator, screenshot
):
    """The simulator's ``slow`` fault holds the reply back: Stop is pressed before the first token."""
    openai_simulator.slow_seconds = 5
    key = sim_key(project, openai_simulator, "slow")
    login(member)
    page.goto(f"{live_server.url}/playground/?project={project.public_id}")
    page.select_option("#id_api_key", str(key.public_id))
    page.fill("#id_input", "Take your time.")
    page.click("#run-button")
    page.wait_for_selector("#stream-status:has-text('waiting for the model')")
    page.click("#stop-button")
    page.wait_for_selector("#result-details", timeout=4_000)  # well before the slow reply
    screenshot("playground-stopped-before-reply")
    record = UsageRecord.objects.get(project=project)
    assert (record.status, record.error_type, record.server_request_id) == (
        "incomplete",
        "StreamStopped",
        "",
    )
    assert page.text_content("#output") == ""
    assert page.text_content("#stream-status").startswith(
        "Stopped. The server recorded the call as incomplete"
    )
    assert page.text_content("#result-status") == "incomplete"
    assert page.text_content("#client-request-id") == record.client_request_id
    assert "before the model answered" in page.text_content("#result-message")
    assert page.is_enabled("#run-button") and not page.is_enabled("#stop-button")


def test_the_effort_select_follows_the_selected_model(
    page, login, live_server, member, project, openai_simulator, screenshot
):
    project.allowed_models = ["gpt-4.1", "gpt-5.4-mini"]
    project.save()
    key = sim_key(project, openai_simulator)
    login(member)
    page.goto(f"{live_server.url}/playground/?project={project.public_id}")
    assert page.input_value("#id_model") == "gpt-4.1"
    assert not page.is_visible("#id_reasoning_effort")  # gpt-4.1 takes no effort
    page.select_option("#id_model", "gpt-5.4-mini")
    assert page.is_visible("#id_reasoning_effort")
    page.select_option("#id_reasoning_effort", "xhigh")
    screenshot("playground-reasoning-effort")
    page.select_option("#id_api_key", str(key.public_id))
    page.fill("#id_input", "Think hard.")
    page.uncheck("#id_stream")
    page.click("#run-button")
    page.wait_for_selector("#result-details", timeout=15_000)
    assert (
        UsageRecord.objects.get(project=project).reasoning_tokens == 48
    )  # the simulator's count for xhigh
    page.select_option("#id_model", "gpt-4.1")
    assert not page.is_visible("#id_reasoning_effort")


def test_the_playground_fits_a_phone(
    page, login, live_server, member, project, openai_simulator, screenshot
):
    """A long key name, and the result's long ids, must not push the page wider than a 390 px screen."""
    key = sim_key(
        project, openai_simulator, name="A key with a rather long name for the billing service"
    )
    page.set_viewport_size({"width": 390, "height": 844})
    login(member)
    page.goto(f"{live_server.url}/playground/?project={project.public_id}")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    page.select_option("#id_api_key", str(key.public_id))
    page.fill("#id_input", "Hello from a phone.")
    page.click("#run-button")
    page.wait_for_selector("#result-details", timeout=15_000)
    screenshot("playground-phone")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
