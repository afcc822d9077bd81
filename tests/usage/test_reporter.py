"""The reporter helper against a live console and a fake OpenAI server, over real HTTP."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import openai
import pytest

from tests.factories import fake_secret
from tests.usage.fake_openai import FakeOpenAI
from usage.models import UsageRecord
from usage.reporter import UsageReporter, instrument
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
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         env={"PATH": "/usr/bin:/bin"}, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


@pytest.fixture
def fake_openai():
    server = FakeOpenAI()
    yield server
    server.stop()


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


@live_db
def test_every_kind_of_call_is_reported(console, fake_openai, project):
    reporter = make_reporter(*console)
    client = instrument(openai.OpenAI(api_key=fake_secret(), base_url=fake_openai.base_url, max_retries=0), reporter)
    try:
        r = client.responses.create(model="gpt-5.4-mini", input="Hello")
        assert r.output_text == "Hi there"  # the application's result is untouched
        events = [e.type for e in client.responses.create(model="gpt-5.5", input="Hi", stream=True)]
        assert events[-1] == "response.completed"
        client.chat.completions.create(model="gpt-4.1", messages=[{"role": "user", "content": "x"}])
        chunks = list(client.chat.completions.create(
            model="gpt-4.1-mini", messages=[{"role": "user", "content": "x"}], stream=True,
            stream_options={"include_usage": True}))
        assert chunks[-1].usage.total_tokens == 55
        client.embeddings.create(model="text-embedding-3-small", input="abc")
        with pytest.raises(openai.RateLimitError):
            client.responses.create(model="fail-429", input="x")
        assert reporter.flush(timeout=30)
    finally:
        reporter.close(timeout=5)
    assert reporter.dropped == 0 and reporter.rejected == 0
    recs = {r.model: r for r in UsageRecord.objects.filter(project=project)}
    assert set(recs) == {"gpt-5.4-mini", "gpt-5.5", "gpt-4.1", "gpt-4.1-mini", "text-embedding-3-small", "fail-429"}
    streamed = recs["gpt-5.5"]
    assert (streamed.input_tokens, streamed.cached_input_tokens, streamed.output_tokens) == (120, 20, 30)
    assert streamed.cost is not None and streamed.cost > 0 and streamed.source == "ingest"
    assert streamed.server_request_id.startswith("req_fake") and streamed.latency_ms is not None
    assert recs["gpt-4.1-mini"].input_tokens == 50
    assert recs["text-embedding-3-small"].input_tokens == 8
    assert recs["text-embedding-3-small"].response_id.startswith("emb_")
    err = recs["fail-429"]
    assert (err.status, err.error_type) == ("error", "RateLimitError")


@live_db
def test_async_client(console, fake_openai, project):
    reporter = make_reporter(*console)
    client = instrument(openai.AsyncOpenAI(api_key=fake_secret(), base_url=fake_openai.base_url, max_retries=0), reporter)

    async def run():
        await client.responses.create(model="gpt-5.4-nano", input="Hello")
        stream = await client.responses.create(model="gpt-5", input="Hi", stream=True)
        return [e.type async for e in stream]

    try:
        events = asyncio.run(run())
        assert events[-1] == "response.completed"
        assert reporter.flush(timeout=30)
    finally:
        reporter.close(timeout=5)
    assert set(UsageRecord.objects.filter(project=project).values_list("model", flat=True)) == {"gpt-5.4-nano", "gpt-5"}


class _Forwarder(BaseHTTPRequestHandler):
    """Relays POSTs to the live console: the console 'coming back' on the reporter's URL."""

    protocol_version = "HTTP/1.1"
    target = ""

    def log_message(self, *args):
        pass

    def do_POST(self):  # noqa: N802
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        req = urllib.request.Request(self.target, data=body, method="POST",
                                     headers={k: v for k, v in self.headers.items() if k.lower() in
                                              ("authorization", "content-type")})
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


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@live_db
def test_console_down_then_back_loses_nothing_within_the_queue_bound(console, project):
    url, token = console
    port = _free_port()
    reporter = make_reporter(f"http://127.0.0.1:{port}/api/v1/usage", token, max_queue=10, batch_size=4)
    server = None
    try:
        accepted = [reporter.report({"response_id": f"down{i}", "model": "gpt-5.4-mini",
                                     "usage": {"input_tokens": 10, "output_tokens": 2}, "response": {}})
                    for i in range(30)]
        assert wait_for(lambda: reporter.failed_attempts >= 2)  # the console is down: retrying
        n = sum(accepted)
        assert 10 <= n <= 14  # the queue bound plus the batch in flight
        assert reporter.dropped == 30 - n
        assert accepted[:10] == [True] * 10
        # The console comes back on the same address.
        handler = type("F", (_Forwarder,), {"target": url})
        server = ThreadingHTTPServer(("127.0.0.1", port), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        assert reporter.flush(timeout=30)
    finally:
        reporter.close(timeout=5)
        if server:
            server.shutdown()
            server.server_close()
    stored = set(UsageRecord.objects.filter(project=project).values_list("response_id", flat=True))
    assert stored == {f"down{i}" for i, ok in enumerate(accepted) if ok}
    assert reporter.sent == n and reporter.created == n


@live_db
def test_an_invalid_record_is_rejected_not_retried_forever(console, project):
    reporter = make_reporter(*console)
    try:
        reporter.report({"response_id": "bad", "model": "gpt-5.5", "usage": {"input_tokens": -1}, "response": {}})
        assert reporter.flush(timeout=30)
    finally:
        reporter.close(timeout=5)
    assert reporter.rejected == 1 and not UsageRecord.objects.exists()


def test_the_reporter_never_shows_its_token():
    token = "ingest_0123456789ab_" + "s" * 40
    reporter = UsageReporter("http://127.0.0.1:9/api/v1/usage", token, register_atexit=False)
    try:
        assert token not in repr(reporter)
    finally:
        reporter.close(timeout=0.1)
