"""The playground pages: access, the form's checks, plain and streamed calls."""

from __future__ import annotations

import asyncio
import json
import re
import socket
import time
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlencode, urlsplit

import pytest
import time_machine
from asgiref.sync import sync_to_async
from django.core.asgi import get_asgi_application
from django.db import connections
from django.test import AsyncClient, Client
from django.urls import reverse

from platformadmin.openai.breaker import CircuitBreaker
from platformadmin.templatetags.console_format import format_money
from tests.factories import ProjectFactory
from tests.platformadmin.helpers import sim_key
from usage.models import UsageRecord

pytestmark = pytest.mark.django_db

INDEX, RUN, STREAM = (
    reverse("playground:index"),
    reverse("playground:run"),
    reverse("playground:stream"),
)


def form_data(project, key, **kw):
    data = {
        "project": str(project.public_id),
        "api_key": str(key.public_id),
        "model": "gpt-5.4-mini",
        "input": "Tell me about budgets.",
        "instructions": "",
        "temperature": "",
        "max_output_tokens": "",
        "reasoning_effort": "",
    }
    data.update(kw)
    return data


def ndjson(response) -> list[dict]:
    body = b"".join(response.streaming_content).decode()
    return [json.loads(line) for line in body.splitlines() if line.strip()]


def test_it_requires_sign_in(client):
    assert client.get(INDEX).status_code == 302


def test_outsiders_get_404(client, outsider, project):
    client.force_login(outsider)
    assert client.get(INDEX, {"project": project.public_id}).status_code == 404
    assert client.post(RUN, {"project": str(project.public_id)}).status_code == 404


def test_readers_get_403(client, reader, project, api_key):
    client.force_login(reader)
    assert client.get(INDEX, {"project": project.public_id}).status_code == 403
    assert client.post(RUN, form_data(project, api_key)).status_code == 403
    assert client.post(STREAM, form_data(project, api_key)).status_code == 403


def test_a_reader_without_projects_is_told_why(client, reader):
    client.force_login(reader)
    response = client.get(INDEX)
    assert response.status_code == 200
    assert "not an owner or member of any project" in response.content.decode()


def test_a_member_sees_the_projects_keys_and_allowed_models(
    client, member, project, openai_simulator
):
    project.allowed_models = ["gpt-5.4-mini", "gpt-4.1-mini"]
    project.save()
    key = sim_key(project, openai_simulator, name="app key")
    revoked = sim_key(
        project,
        openai_simulator,
        name="old key",
    )
    revoked.status = "revoked"
    revoked.save()
    other_key = sim_key(
        ProjectFactory(organization=project.organization), openai_simulator, name="elsewhere"
    )
    client.force_login(member)
    page = client.get(INDEX).content.decode()
    assert str(key.public_id) in page and "app key" in page
    assert str(revoked.public_id) not in page and str(other_key.public_id) not in page
    assert "gpt-5.4-mini · reasoning" in page and "gpt-4.1-mini" in page and "gpt-5.5" not in page
    assert "Circuit breaker" in page


def test_a_plain_call_shows_the_result_panel_and_records_usage(
    client, member, project, openai_simulator
):
    key = sim_key(project, openai_simulator)
    client.force_login(member)
    response = client.post(RUN, form_data(project, key))
    page = response.content.decode()
    assert response.status_code == 200
    record = UsageRecord.objects.get(project=project)
    for shown in (
        record.server_request_id,
        record.client_request_id,
        f"{record.input_tokens}",
        reverse("usage:project-usage", kwargs={"project_id": project.public_id}),
    ):
        assert shown in page
    assert (
        f'id="result-cost">{format_money(record.cost)}<' in page
    )  # the cost, from the record, as money
    assert record.cost < Decimal("0.01") and format_money(record.cost) != "$0.00"


def test_an_htmx_call_answers_the_text_and_result_panel_only(
    client, member, project, openai_simulator
):
    key = sim_key(project, openai_simulator)
    client.force_login(member)
    response = client.post(RUN, form_data(project, key), headers={"HX-Request": "true"})
    fragment = response.content.decode()
    assert response.status_code == 200
    record = UsageRecord.objects.get(project=project)
    assert record.status == "completed" and record.server_request_id in fragment
    assert 'id="run-output"' in fragment and 'id="result-details"' in fragment
    assert "project-switcher" not in fragment and "<html" not in fragment  # not the whole page


def test_an_htmx_call_keeps_access_checks(client, outsider, reader, project, api_key):
    client.force_login(outsider)
    assert (
        client.post(RUN, form_data(project, api_key), headers={"HX-Request": "true"}).status_code
        == 404
    )
    client.force_login(reader)
    assert (
        client.post(RUN, form_data(project, api_key), headers={"HX-Request": "true"}).status_code
        == 403
    )


def test_errors_are_a_message_not_a_500(client, member, project, openai_simulator):
    key = sim_key(project, openai_simulator, "401")
    client.force_login(member)
    response = client.post(RUN, form_data(project, key))
    assert response.status_code == 200
    page = response.content.decode()
    assert "rejected key" in page and "request id req_" in page


@pytest.mark.parametrize(
    ("override", "field", "words"),
    [
        ({"input": ""}, "input", "Enter the input"),
        ({"temperature": "3"}, "temperature", "less than or equal to 2"),
        ({"max_output_tokens": "5000"}, "max_output_tokens", "caps max output tokens at 4096"),
        (
            {"model": "gpt-4.1-mini", "reasoning_effort": "low"},
            "reasoning_effort",
            "not a reasoning model",
        ),
        ({"model": "gpt-5.5"}, "model", "Select a valid choice"),
    ],
)
def test_bad_input_names_the_field(
    client, member, project, openai_simulator, override, field, words
):
    project.max_output_tokens = 4096
    project.allowed_models = ["gpt-5.4-mini", "gpt-4.1-mini"]
    project.save()
    key = sim_key(project, openai_simulator)
    client.force_login(member)
    response = client.post(RUN, form_data(project, key, **override))
    assert response.status_code == 400
    assert words in response.content.decode()
    for streamed in (
        client.post(STREAM, form_data(project, key, **override)),
        client.post(RUN, form_data(project, key, **override), headers={"HX-Request": "true"}),
    ):
        assert streamed.status_code == 400
        event = json.loads(streamed.content)
        assert event["type"] == "invalid" and words in " ".join(event["errors"][field])
    assert openai_simulator.requests == 0


def test_a_key_of_another_project_is_refused(client, member, project, openai_simulator):
    other_key = sim_key(ProjectFactory(organization=project.organization), openai_simulator)
    client.force_login(member)
    response = client.post(RUN, form_data(project, other_key))
    assert response.status_code == 400 and "Select a valid choice" in response.content.decode()


def test_a_streamed_call_sends_deltas_then_the_result(client, member, project, openai_simulator):
    key = sim_key(project, openai_simulator)
    client.force_login(member)
    response = client.post(STREAM, form_data(project, key))
    assert response["Content-Type"] == "application/x-ndjson"
    events = ndjson(response)
    kinds = [e["type"] for e in events]
    assert kinds[:2] == ["accepted", "start"] and kinds[-1] == "done" and kinds.count("delta") >= 8
    record = UsageRecord.objects.get(project=project)
    assert events[0]["client_request_id"] == record.client_request_id
    assert events[1]["request_id"] == record.server_request_id
    assert record.server_request_id in events[-1]["html"]
    assert record.status == "completed"


def test_a_streamed_error_arrives_as_a_message(client, member, project, openai_simulator):
    key = sim_key(project, openai_simulator, "403")
    client.force_login(member)
    events = ndjson(client.post(STREAM, form_data(project, key)))
    assert [e["type"] for e in events if e["type"] != "waiting"] == ["accepted", "done"]
    assert not events[-1]["ok"] and "(403)" in events[-1]["html"]


@pytest.mark.django_db(transaction=True)
def test_under_asgi_the_stream_arrives_chunk_by_chunk(member, project, openai_simulator):
    """ASGI (uvicorn in `make run`): chunks arrive one by one, the call is recorded."""
    key = sim_key(project, openai_simulator)

    async def go():
        client = AsyncClient()
        await client.aforce_login(member)
        response = await client.post(STREAM, form_data(project, key))
        chunks = [chunk async for chunk in response.streaming_content]
        # The view's database work ran in asgiref's executor thread: close that thread's connection.
        await sync_to_async(connections.close_all)()
        return chunks

    chunks = asyncio.run(go())
    events = [json.loads(c) for c in chunks]
    assert [e["type"] for e in events[:2]] == ["accepted", "start"] and events[-1]["type"] == "done"
    assert len(chunks) >= 10  # one chunk per event, not one buffered blob
    assert UsageRecord.objects.filter(project=project, status="completed").count() == 1


# --- Stop, at any moment: exactly one incomplete record, and the page is told so --------------


def read_until(lines, kind: str) -> list[dict]:
    """The stream's events up to and including the first of ``kind``."""
    seen = []
    for line in lines:
        seen.append(json.loads(line))
        if seen[-1]["type"] == kind:
            return seen
    raise AssertionError(f"no {kind!r} event in {seen}")


@pytest.mark.parametrize("moment", ["accepted", "start", "delta"])
def test_stop_at_any_moment_records_one_incomplete_call_and_says_so(
    client, member, project, openai_simulator, moment
):
    """Before the response is created (the simulator's ``slow`` fault holds the reply back),
    once it is (before the first text) and mid-stream."""
    openai_simulator.delta_delay = 0.2
    key = sim_key(project, openai_simulator, "slow" if moment == "accepted" else "")
    client.force_login(member)
    started = time.monotonic()
    lines = iter(client.post(STREAM, form_data(project, key)).streaming_content)
    before = read_until(lines, moment)
    cid = before[0]["client_request_id"]
    assert client.post(reverse("playground:stop"), {"client_request_id": cid}).status_code == 202
    after = [json.loads(line) for line in lines]
    done = after[-1]
    assert done["type"] == "done" and done["status"] == "incomplete"
    if moment == "accepted":  # the stop did not wait for the slow reply
        assert time.monotonic() - started < openai_simulator.slow_seconds
    record = UsageRecord.objects.get(project=project)
    assert (record.status, record.error_type, record.client_request_id) == (
        "incomplete",
        "StreamStopped",
        cid,
    )
    assert "recorded as incomplete" in done["html"] and cid in done["html"]
    assert reverse("usage:project-usage", kwargs={"project_id": project.public_id}) in done["html"]
    starts = [e for e in before + after if e["type"] == "start"]
    if moment == "accepted":
        assert record.server_request_id == "" and record.response_id is None and not starts
        assert "none (no reply)" in done["html"]
    else:
        assert (
            record.server_request_id == starts[0]["request_id"]
            and record.server_request_id in done["html"]
        )
    if moment == "delta":
        assert record.response_id.startswith("resp_") and record.output_tokens >= 1
    time.sleep(
        openai_simulator.slow_seconds if moment == "accepted" else 0.3
    )  # the late reply changes nothing
    assert UsageRecord.objects.filter(project=project).count() == 1


def test_a_stop_names_a_bad_call_id(client, member):
    assert (
        client.post(reverse("playground:stop"), {"client_request_id": "x"}).status_code == 302
    )  # sign in first
    client.force_login(member)
    response = client.post(reverse("playground:stop"), {"client_request_id": "not-an-id"})
    assert response.status_code == 400
    assert response.json()["error"]["field"] == "client_request_id"
    assert "not a UUID" in response.json()["error"]["message"]


CSRF = "c" * 32  # an unmasked CSRF secret, sent as cookie and header alike


def open_stream(server_url: str, user, data: dict) -> socket.socket:
    """POST /playground/stream on a raw socket, so the test can drop the connection at will."""
    client = Client()
    client.force_login(user)
    body = urlencode(data).encode()
    where = urlsplit(server_url)
    sock = socket.create_connection((where.hostname, where.port))
    sock.sendall(
        (
            f"POST {STREAM} HTTP/1.1\r\nHost: {where.netloc}\r\n"
            f"Cookie: sessionid={client.cookies['sessionid'].value}; csrftoken={CSRF}\r\n"
            f"X-CSRFToken: {CSRF}\r\nContent-Type: application/x-www-form-urlencoded\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode()
        + body
    )
    return sock


@pytest.mark.django_db(transaction=True)
def test_a_browser_that_leaves_before_the_reply_is_recorded_at_once(
    live_server, member, project, openai_simulator
):
    """The connection dropped while the model has not answered: the server notices at its
    next heartbeat and records the call then, not when the slow reply finally comes."""
    key = sim_key(project, openai_simulator, "slow")
    sock = open_stream(live_server.url, member, form_data(project, key))
    received = b""
    while b'"accepted"' not in received:  # the headers, then the first event
        chunk = sock.recv(4096)
        assert chunk, received
        received += chunk
    sock.close()
    left = time.monotonic()
    while not UsageRecord.objects.filter(project=project).exists():
        assert time.monotonic() - left < openai_simulator.slow_seconds - 0.3, (
            "not recorded before the reply"
        )
        time.sleep(0.05)
    record = UsageRecord.objects.get(project=project)
    assert (record.status, record.error_type, record.server_request_id) == (
        "incomplete",
        "StreamStopped",
        "",
    )
    assert record.client_request_id
    time.sleep(openai_simulator.slow_seconds)
    assert UsageRecord.objects.filter(project=project).count() == 1


# --- Reasoning effort: what the selected model supports ----------------------------------------

CATALOG_EFFORTS = json.loads(
    (Path(__file__).resolve().parents[2] / "usage" / "data" / "openai-models.json").read_text()
)["reasoning_effort"]


def test_reasoning_models_are_offered_every_effort_of_the_catalog(
    client, member, project, openai_simulator
):
    project.allowed_models = ["gpt-5.4-mini", "gpt-4.1-mini"]
    project.save()
    sim_key(project, openai_simulator)
    client.force_login(member)
    page = client.get(INDEX).content.decode()
    assert {"none", "xhigh"} <= set(CATALOG_EFFORTS)
    for effort in CATALOG_EFFORTS:
        assert f'<option value="{effort}">{effort}</option>' in page
    assert re.search(r'value="gpt-5.4-mini"[^>]* data-reasoning="true"', page)
    assert re.search(r'value="gpt-4.1-mini"[^>]* data-reasoning="false"', page)
    project.allowed_models = ["gpt-5.4-mini"]
    project.save()
    page = client.get(INDEX).content.decode()
    assert (
        '<div class="field" id="field-reasoning_effort">' in page
    )  # the selected model reasons: shown


def test_no_effort_select_when_no_model_of_the_project_reasons(
    client, member, project, openai_simulator
):
    project.allowed_models = ["gpt-4.1-mini", "gpt-4.1"]
    project.save()
    sim_key(project, openai_simulator)
    client.force_login(member)
    page = client.get(INDEX).content.decode()
    assert "id_reasoning_effort" not in page and "Reasoning effort" not in page


def test_the_effort_select_starts_hidden_when_the_first_model_does_not_reason(
    client, member, project, openai_simulator
):
    project.allowed_models = ["gpt-4.1", "gpt-5.4-mini"]
    project.save()
    sim_key(project, openai_simulator)
    client.force_login(member)
    page = client.get(INDEX).content.decode()
    assert '<div class="field" id="field-reasoning_effort" hidden>' in page


@pytest.mark.parametrize("effort", ["none", "xhigh"])
def test_efforts_beyond_minimal_to_high_reach_the_model(
    client, member, project, openai_simulator, effort
):
    key = sim_key(project, openai_simulator)
    client.force_login(member)
    response = client.post(RUN, form_data(project, key, reasoning_effort=effort))
    assert response.status_code == 200
    record = UsageRecord.objects.get(project=project)
    assert record.status == "completed"
    assert (
        record.reasoning_tokens == {"none": 0, "xhigh": 48}[effort]
    )  # the simulator's count for it


def test_an_unknown_effort_is_a_form_error_naming_the_field(
    client, member, project, openai_simulator
):
    key = sim_key(project, openai_simulator)
    client.force_login(member)
    response = client.post(STREAM, form_data(project, key, reasoning_effort="max"))
    assert response.status_code == 400
    assert "Select a valid choice" in " ".join(
        json.loads(response.content)["errors"]["reasoning_effort"]
    )
    assert openai_simulator.requests == 0


@pytest.mark.django_db(transaction=True)
def test_under_asgi_a_client_that_leaves_before_the_reply_is_recorded_at_once(
    member, project, openai_simulator
):
    """uvicorn (`make run`): the disconnect cancels the stream, which records the call at once."""
    key = sim_key(project, openai_simulator, "slow")
    client = Client()
    client.force_login(member)
    body = urlencode(form_data(project, key)).encode()
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": STREAM,
        "raw_path": STREAM.encode(),
        "query_string": b"",
        "root_path": "",
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
        "headers": [
            (b"host", b"testserver"),
            (b"content-type", b"application/x-www-form-urlencoded"),
            (b"content-length", str(len(body)).encode()),
            (b"x-csrftoken", CSRF.encode()),
            (
                b"cookie",
                f"sessionid={client.cookies['sessionid'].value}; csrftoken={CSRF}".encode(),
            ),
        ],
    }

    async def go() -> list[dict]:
        sent: list[dict] = []
        first_event = asyncio.Event()
        requests = [{"type": "http.request", "body": body, "more_body": False}]

        async def receive() -> dict:
            if requests:
                return requests.pop(0)
            await first_event.wait()  # the browser leaves once the call is accepted
            return {"type": "http.disconnect"}

        async def send(message: dict) -> None:
            sent.append(message)
            if message["type"] == "http.response.body" and message.get("body"):
                first_event.set()

        await asyncio.wait_for(get_asgi_application()(scope, receive, send), timeout=10)
        await sync_to_async(connections.close_all)()
        return sent

    sent = asyncio.run(go())
    left = time.monotonic()
    assert b'"accepted"' in sent[1]["body"]
    while not UsageRecord.objects.filter(project=project).exists():
        assert time.monotonic() - left < openai_simulator.slow_seconds - 0.3, (
            "not recorded before the reply"
        )
        time.sleep(0.05)
    record = UsageRecord.objects.get(project=project)
    assert (record.status, record.error_type, record.server_request_id) == (
        "incomplete",
        "StreamStopped",
        "",
    )
    time.sleep(openai_simulator.slow_seconds)
    assert UsageRecord.objects.filter(project=project).count() == 1


def test_a_stop_before_the_reply_gives_back_a_half_open_probe(
    client, member, project, openai_simulator, settings
):
    """Nothing was learned about the upstream, so the key is not blocked until the probe times out."""
    settings.OPENAI_BREAKER_FAILURE_THRESHOLD = 3
    key = sim_key(project, openai_simulator, "slow")
    breaker = CircuitBreaker.for_key(key)
    for _ in range(3):
        breaker.record_failure("APIConnectionError")
    client.force_login(member)
    with time_machine.travel(breaker.state().half_opens_at.timestamp() + 1, tick=True):
        lines = iter(client.post(STREAM, form_data(project, key)).streaming_content)
        cid = json.loads(next(lines))["client_request_id"]
        assert (
            client.post(reverse("playground:stop"), {"client_request_id": cid}).status_code == 202
        )
        assert json.loads(list(lines)[-1])["status"] == "incomplete"
        breaker.before_call()  # the probe is free: no BreakerOpen
