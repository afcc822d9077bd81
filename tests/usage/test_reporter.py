"""The reporter helper against the live console and the project's OpenAI simulator, over real HTTP."""

from __future__ import annotations

import asyncio
import inspect
import json
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import openai
import pytest

from tests.factories import fake_secret
from usage.models import UsageRecord
from usage.reporter import INSTRUMENTED, UsageReporter, instrument
from usage.services import ingestion_token_create

ROOT = Path(__file__).resolve().parents[2]
# The live server needs real transactions (the catalog is re-seeded by conftest).
live_db = pytest.mark.django_db(transaction=True)


def wait_for(condition, timeout=30.0):
    """Poll a condition (a bound, not a timing assertion)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


def test_it_imports_without_django():
    code = (
        "import sys; import usage.reporter as r; "
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('django', 'orgs', 'keys', 'platformadmin')); "
        "assert not bad, bad; assert r.UsageReporter and r.instrument; print('ok')"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin"},
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


@pytest.fixture
def console(live_server, project, owner, settings):
    settings.USAGE_INGEST_RATE_PER_MINUTE = 0
    _, token = ingestion_token_create(project=project, name="app", actor=owner)
    return f"{live_server.url}/api/v1/usage", token


def make_reporter(url, token, **kw):
    kw.setdefault("flush_interval", 0.05)
    kw.setdefault("backoff_initial", 0.02)
    kw.setdefault("backoff_max", 0.2)
    return UsageReporter(url, token, register_atexit=False, **kw)


def records(project) -> list[UsageRecord]:
    return list(UsageRecord.objects.filter(project=project).order_by("id"))


# --- every instrumented method, sync and async, streamed or not, success and error ----------------

MODELS = {
    "responses": "gpt-5.4-mini",
    "chat": "gpt-4.1-mini",
    "embeddings": "text-embedding-3-small",
}
CASES = [
    (kind, streamed)
    for _, kind in INSTRUMENTED
    for streamed in (False, True)
    if not (kind == "embeddings" and streamed)
]


def _kwargs(kind: str, model: str, streamed: bool, client_request_id: str) -> dict:
    kw: dict = {"model": model, "extra_headers": {"X-Client-Request-Id": client_request_id}}
    if kind == "responses":
        kw["input"] = "Hello from the reporter test"
    elif kind == "chat":
        kw["messages"] = [{"role": "user", "content": "Hello from the reporter test"}]
        if streamed:
            kw["stream_options"] = {"include_usage": True}
    else:
        kw["input"] = ["Hello from", "the reporter test"]
    if streamed:
        kw["stream"] = True
    return kw


def _seen(kind: str, result, streamed: bool, items: list | None, stream=None) -> dict:
    """What the application saw: id, token counts, request id."""
    if streamed:
        final = items[-1].response if kind == "responses" else items[-1]
        rid = stream.response.headers["x-request-id"]
    else:
        final, rid = result, result._request_id
    usage = final.usage
    if kind == "responses":
        tokens = (usage.input_tokens, usage.output_tokens)
    else:
        tokens = (usage.prompt_tokens, getattr(usage, "completion_tokens", 0))
    return {
        "id": getattr(final, "id", None) if kind != "embeddings" else None,
        "tokens": tokens,
        "request_id": rid,
    }


def _resource(client, kind: str):
    return {
        "responses": client.responses,
        "chat": client.chat.completions,
        "embeddings": client.embeddings,
    }[kind]


def _call_sync(client, kind: str, streamed: bool, kw: dict) -> dict:
    result = _resource(client, kind).create(**kw)
    if streamed:
        return _seen(kind, None, True, list(result), result)
    return _seen(kind, result, False, None)


async def _call_async(client, kind: str, streamed: bool, kw: dict) -> dict:
    result = await _resource(client, kind).create(**kw)
    if streamed:
        return _seen(kind, None, True, [item async for item in result], result)
    return _seen(kind, result, False, None)


@live_db
@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize(("kind", "streamed"), CASES)
def test_every_instrumented_method_reports_success_and_error(
    console, openai_simulator, project, kind, streamed, mode
):
    reporter = make_reporter(*console)
    factory = openai.OpenAI if mode == "sync" else openai.AsyncOpenAI
    client = instrument(
        factory(api_key=fake_secret(), base_url=openai_simulator.base_url, max_retries=0), reporter
    )
    ok_kw = _kwargs(kind, MODELS[kind], streamed, "cli-ok")
    bad_kw = _kwargs(kind, MODELS[kind] + "-fault-500", streamed, "cli-bad")

    async def run_async():
        seen = await _call_async(client, kind, streamed, ok_kw)
        with pytest.raises(openai.InternalServerError) as info:
            await _call_async(client, kind, streamed, bad_kw)
        return seen, info.value

    try:
        if mode == "sync":
            seen = _call_sync(client, kind, streamed, ok_kw)
            with pytest.raises(openai.InternalServerError) as info:
                _call_sync(client, kind, streamed, bad_kw)
            error = info.value
        else:
            seen, error = asyncio.run(run_async())
        assert reporter.flush(timeout=30)
    finally:
        reporter.close(timeout=5)
    assert (reporter.dropped, reporter.rejected, reporter.reporting_errors) == (0, 0, 0)
    by_model = {r.model: r for r in records(project)}
    ok, bad = by_model[MODELS[kind]], by_model[MODELS[kind] + "-fault-500"]
    assert len(by_model) == 2
    assert (ok.model, ok.status, ok.error_type, ok.source) == (
        MODELS[kind],
        "completed",
        "",
        "ingest",
    )
    assert (ok.input_tokens, ok.output_tokens) == seen["tokens"] and ok.input_tokens > 0
    assert ok.server_request_id == seen["request_id"] and ok.client_request_id == "cli-ok"
    assert ok.latency_ms is not None
    if seen["id"]:
        assert ok.response_id == seen["id"]
    else:
        assert ok.response_id.startswith("emb_")
    assert ok.cost is not None and ok.cost > 0
    assert (bad.model, bad.status, bad.error_type) == (
        MODELS[kind] + "-fault-500",
        "error",
        "InternalServerError",
    )
    assert bad.server_request_id == error.request_id and bad.client_request_id == "cli-bad"


def test_the_async_methods_stay_coroutine_functions():
    """``AsyncCompletions.create`` is not a coroutine function to ``inspect``: the wrapper must be one."""
    reporter = UsageReporter("http://127.0.0.1:9/api/v1/usage", "t", register_atexit=False)
    try:
        aclient = instrument(openai.AsyncOpenAI(api_key=fake_secret()), reporter)
        for resource in (aclient.responses, aclient.chat.completions, aclient.embeddings):
            assert inspect.iscoroutinefunction(resource.create), resource
        client = instrument(openai.OpenAI(api_key=fake_secret()), reporter)
        for resource in (client.responses, client.chat.completions, client.embeddings):
            assert not inspect.iscoroutinefunction(resource.create), resource
    finally:
        reporter.close(timeout=0.1)


# --- streams that end without their final event ------------------------------------------------------


def _stream_kwargs(kind: str, model: str) -> dict:
    return _kwargs(kind, model, True, "cli-stream")


@live_db
@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("kind", ["responses", "chat"])
def test_a_cut_stream_is_reported_incomplete(console, openai_simulator, project, kind, mode):
    reporter = make_reporter(*console)
    factory = openai.OpenAI if mode == "sync" else openai.AsyncOpenAI
    client = instrument(
        factory(api_key=fake_secret(), base_url=openai_simulator.base_url, max_retries=0), reporter
    )
    model = MODELS[kind] + "-fault-cut"
    kw = _stream_kwargs(kind, model)
    seen: list = []

    async def run_async():
        stream = await _resource(client, kind).create(**kw)
        async for item in stream:
            seen.append(item)
        return stream

    try:
        with pytest.raises(openai.APIConnectionError):
            if mode == "sync":
                stream = _resource(client, kind).create(**kw)
                for item in stream:
                    seen.append(item)
            else:
                asyncio.run(run_async())
        assert reporter.flush(timeout=30)
    finally:
        reporter.close(timeout=5)
    assert seen  # the stream started, then broke
    [rec] = records(project)
    expected_id = seen[0].response.id if kind == "responses" else seen[0].id
    assert (rec.model, rec.status, rec.error_type) == (model, "incomplete", "stream_cut")
    assert rec.response_id == expected_id
    assert rec.server_request_id == openai_simulator.log[-1]["request_id"]
    assert rec.client_request_id == "cli-stream" and rec.latency_ms is not None
    assert rec.input_tokens == 0


@live_db
@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("kind", ["responses", "chat"])
def test_a_stream_the_application_stops_reading_is_reported_incomplete(
    console, openai_simulator, project, kind, mode
):
    reporter = make_reporter(*console)
    factory = openai.OpenAI if mode == "sync" else openai.AsyncOpenAI
    client = instrument(
        factory(api_key=fake_secret(), base_url=openai_simulator.base_url, max_retries=0), reporter
    )
    kw = _stream_kwargs(kind, MODELS[kind])
    seen: list = []

    async def run_async():
        stream = await _resource(client, kind).create(**kw)
        async with stream:
            async for item in stream:
                seen.append(item)
                break

    try:
        if mode == "sync":
            stream = _resource(client, kind).create(**kw)
            for item in stream:
                seen.append(item)
                break
        else:
            asyncio.run(run_async())
        assert reporter.flush(timeout=30)
    finally:
        reporter.close(timeout=5)
    [rec] = records(project)
    expected_id = seen[0].response.id if kind == "responses" else seen[0].id
    assert (rec.model, rec.status, rec.error_type) == (
        MODELS[kind],
        "incomplete",
        "stream_abandoned",
    )
    assert rec.response_id == expected_id
    assert rec.server_request_id == openai_simulator.log[-1]["request_id"]


@live_db
def test_a_stream_dropped_unread_is_still_counted(console, openai_simulator, project):
    reporter = make_reporter(*console)
    client = instrument(
        openai.OpenAI(api_key=fake_secret(), base_url=openai_simulator.base_url, max_retries=0),
        reporter,
    )
    try:
        stream = client.responses.create(**_stream_kwargs("responses", "gpt-5.4-mini"))
        request_id = stream.response.headers["x-request-id"]
        stream.response.close()
        del stream  # never iterated: the request was made all the same
        assert reporter.flush(timeout=30)
    finally:
        reporter.close(timeout=5)
    [rec] = records(project)
    assert (rec.model, rec.status, rec.error_type) == (
        "gpt-5.4-mini",
        "incomplete",
        "stream_abandoned",
    )
    assert rec.server_request_id == request_id and rec.response_id.startswith("inc_")


# --- delivery: one bad record never keeps the others out ---------------------------------------------


def good(i: int) -> dict:
    return {
        "response_id": f"good{i}",
        "model": "gpt-5.4-mini",
        "response": {},
        "usage": {"input_tokens": 10, "output_tokens": 2},
    }


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Relay(BaseHTTPRequestHandler):
    """Relays POSTs to the live console, unless ``rule`` answers first (a console with a bug)."""

    protocol_version = "HTTP/1.1"
    target = ""
    rule: Callable[[dict], tuple[int, dict | bytes] | None] = staticmethod(lambda body: None)
    seen: list

    def log_message(self, *args):
        pass

    def do_POST(self):  # noqa: N802
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.seen.append(len(json.loads(body)["records"]))
        answer = self.rule(json.loads(body))
        if answer is not None:
            status, payload = answer
            data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        else:
            req = urllib.request.Request(
                self.target,
                data=body,
                method="POST",
                headers={
                    k: v
                    for k, v in self.headers.items()
                    if k.lower() in ("authorization", "content-type")
                },
            )
            try:
                with urllib.request.urlopen(req, timeout=30) as resp:
                    status, data = resp.status, resp.read()
            except urllib.error.HTTPError as err:
                status, data = err.code, err.read()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def relay(console):
    """Start a relay in front of the console with a rule; yields a function returning its URL."""
    servers = []

    def start(rule, port: int | None = None):
        handler = type(
            "R", (_Relay,), {"target": console[0], "rule": staticmethod(rule), "seen": []}
        )
        server = ThreadingHTTPServer(("127.0.0.1", port or 0), handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}/api/v1/usage", handler.seen

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def _report_all(reporter: UsageReporter, items: list[dict]) -> None:
    for item in items:
        assert reporter.report(item)


@live_db
def test_a_400_drops_exactly_the_records_it_names(console, project, caplog):
    reporter = make_reporter(*console, batch_size=50, flush_interval=0.3)
    bad = {"response_id": "bad", "model": "gpt-5.5", "usage": {"input_tokens": -1}, "response": {}}
    try:
        _report_all(
            reporter, [good(i) for i in range(10)] + [bad] + [good(i) for i in range(10, 20)]
        )
        assert reporter.flush(timeout=30)
    finally:
        reporter.close(timeout=5)
    assert {r.response_id for r in records(project)} == {f"good{i}" for i in range(20)}
    assert (reporter.rejected, reporter.sent, reporter.created) == (1, 20, 20)
    assert "record bad rejected (400): records[10].usage.input_tokens" in caplog.text


@live_db
def test_a_body_the_console_refuses_as_a_whole_is_split_until_the_bad_record_is_alone(
    console, project, settings
):
    settings.USAGE_INGEST_MAX_BYTES = 6000  # one oversized record makes any batch holding it a 413
    reporter = make_reporter(*console, batch_size=50, flush_interval=0.3)
    huge = {**good(99), "response_id": "huge", "client_request_id": "x" * 8000}
    try:
        _report_all(
            reporter, [good(i) for i in range(7)] + [huge] + [good(i) for i in range(7, 20)]
        )
        assert reporter.flush(timeout=30)
    finally:
        reporter.close(timeout=5)
    assert {r.response_id for r in records(project)} == {f"good{i}" for i in range(20)}
    assert (reporter.rejected, reporter.sent) == (1, 20)


@live_db
def test_a_400_that_names_no_record_does_not_lose_the_good_ones(relay, console, project):
    def rule(body):
        if any(r["response_id"] == "odd" for r in body["records"]):
            return 400, {
                "error": {
                    "code": "invalid",
                    "message": "body: something about the whole body.",
                    "errors": [{"index": None, "field": "body", "message": "is odd."}],
                }
            }
        return None

    url, _ = relay(rule)
    reporter = make_reporter(url, console[1], batch_size=50, flush_interval=0.3)
    try:
        _report_all(
            reporter,
            [good(i) for i in range(12)]
            + [{**good(50), "response_id": "odd"}]
            + [good(i) for i in range(12, 20)],
        )
        assert reporter.flush(timeout=30)
    finally:
        reporter.close(timeout=5)
    assert {r.response_id for r in records(project)} == {f"good{i}" for i in range(20)}
    assert reporter.rejected == 1


@live_db
def test_a_record_that_makes_the_console_fail_is_dropped_and_later_records_go_through(
    relay, console, project, caplog
):
    def rule(body):
        if any(r["response_id"] == "poison" for r in body["records"]):
            return 500, {"error": {"message": "Server Error (500)"}}
        return None

    url, _ = relay(rule)
    reporter = make_reporter(url, console[1], batch_size=50, flush_interval=0.3, max_attempts=3)
    try:
        _report_all(
            reporter,
            [good(i) for i in range(10)]
            + [{**good(50), "response_id": "poison"}]
            + [good(i) for i in range(10, 20)],
        )
        assert reporter.flush(timeout=30), f"{reporter.pending} record(s) stuck"
        _report_all(reporter, [good(i) for i in range(20, 25)])  # later records are not blocked
        assert reporter.flush(timeout=30)
    finally:
        reporter.close(timeout=5)
    assert {r.response_id for r in records(project)} == {f"good{i}" for i in range(25)}
    assert (reporter.poisoned, reporter.rejected, reporter.sent) == (1, 0, 25)
    assert "record poison dropped after" in caplog.text


@live_db
def test_an_outage_of_500s_loses_nothing(relay, console, project):
    """The bound on 500s must not turn an outage (every send fails) into dropped records."""
    state = {"down": True}

    def rule(body):
        return (500, {"error": {"message": "database unavailable"}}) if state["down"] else None

    url, seen = relay(rule)
    reporter = make_reporter(
        url, console[1], batch_size=8, flush_interval=0.3, max_attempts=2, max_queue=100
    )
    try:
        _report_all(reporter, [good(i) for i in range(30)])
        assert wait_for(lambda: len(seen) >= 40)  # split down to single records, then set aside
        assert reporter.poisoned == 0 and reporter.pending == 30
        state["down"] = False
        assert reporter.flush(timeout=30)
    finally:
        reporter.close(timeout=5)
    assert {r.response_id for r in records(project)} == {f"good{i}" for i in range(30)}
    assert (reporter.poisoned, reporter.rejected, reporter.sent) == (0, 0, 30)


@live_db
def test_a_2xx_that_is_not_json_still_counts_as_sent(relay, console, project):
    url, seen = relay(lambda body: (200, b"<html>OK</html>"))  # e.g. a proxy's own page
    reporter = make_reporter(url, console[1], batch_size=50, flush_interval=0.3)
    try:
        _report_all(reporter, [good(i) for i in range(5)])
        assert reporter.flush(timeout=10)
    finally:
        reporter.close(timeout=1)
    assert (reporter.sent, reporter.created, reporter.failed_attempts, len(seen)) == (5, 0, 0, 1)


@live_db
def test_console_down_then_back_loses_nothing_within_the_queue_bound(relay, console, project):
    url, token = console
    port = _free_port()
    reporter = make_reporter(
        f"http://127.0.0.1:{port}/api/v1/usage", token, max_queue=10, batch_size=4
    )
    try:
        accepted = [
            reporter.report(
                {
                    "response_id": f"down{i}",
                    "model": "gpt-5.4-mini",
                    "usage": {"input_tokens": 10, "output_tokens": 2},
                    "response": {},
                }
            )
            for i in range(30)
        ]
        assert wait_for(lambda: reporter.failed_attempts >= 2)  # the console is down: retrying
        n = sum(accepted)
        assert 10 <= n <= 14  # the queue bound plus the batch in flight
        assert reporter.dropped == 30 - n
        assert accepted[:10] == [True] * 10
        relay(lambda body: None, port=port)  # the console comes back on the same address
        assert reporter.flush(timeout=30)
    finally:
        reporter.close(timeout=5)
    stored = {r.response_id for r in records(project)}
    assert stored == {f"down{i}" for i, ok in enumerate(accepted) if ok}
    assert reporter.sent == n and reporter.created == n


def test_the_reporter_never_shows_its_token():
    token = "ingest_0123456789ab_" + "s" * 40
    reporter = UsageReporter("http://127.0.0.1:9/api/v1/usage", token, register_atexit=False)
    try:
        assert token not in repr(reporter)
    finally:
        reporter.close(timeout=0.1)


def test_max_attempts_must_be_positive():
    with pytest.raises(ValueError, match="max_attempts"):
        UsageReporter("http://127.0.0.1:9/api/v1/usage", "t", register_atexit=False, max_attempts=0)
