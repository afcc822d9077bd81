"""The outgoing-request guard: only public addresses, checked where the socket goes, no
redirects, unless the exact origin is allow-listed. A real HTTP server on 127.0.0.1
stands for "something on the server's own network" and must see zero requests."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import shutil
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpcore2
import httpx2
import pytest
from django.core.exceptions import ImproperlyConfigured, ValidationError

from platformadmin import netguard
from platformadmin.openai.breaker import CircuitBreaker
from platformadmin.openai.services import GenerateParams, generate, models_list
from tests.factories import make_api_key

PHRASE = (
    "resolves to a private address; outgoing requests go only to public addresses unless its "
    "origin is in OUTBOUND_ALLOWED_ORIGINS"
)
ROOT = Path(__file__).resolve().parents[2]
MODELS = json.dumps(
    {"object": "list", "data": [{"id": "internal-secret-model", "object": "model"}]}
).encode()


class RecordingServer:
    """A loopback HTTP server that answers ``reply`` and records every request it gets."""

    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.reply: tuple[int, dict[str, str], bytes] = (
            200,
            {"content-type": "application/json"},
            MODELS,
        )
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server's naming)
                outer.requests.append(
                    {
                        "path": self.path,
                        "authorization": self.headers.get("authorization"),
                        "api-key": self.headers.get("api-key"),
                    }
                )
                status, headers, body = outer.reply
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_POST = do_GET  # noqa: N815

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.origin = f"http://127.0.0.1:{self.port}"
        threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        ).start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def target():
    server = RecordingServer()
    yield server
    server.stop()


@pytest.fixture
def second():
    server = RecordingServer()
    yield server
    server.stop()


@pytest.fixture
def client():
    with netguard.guarded_client() as c:
        yield c


# --- Which addresses are refused --------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("127.0.0.1", "loopback"),
        ("127.255.0.9", "loopback"),
        ("::1", "loopback"),
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("192.168.1.1", "private"),
        ("fd12::1", "private"),
        ("100.64.0.1", "shared (carrier-grade NAT)"),
        ("169.254.10.10", "link-local"),
        ("fe80::1", "link-local"),
        ("fe80::1%2", "link-local"),
        ("224.0.0.1", "multicast"),
        ("ff02::1", "multicast"),
        ("240.0.0.1", "reserved"),
        ("255.255.255.255", "reserved"),
        ("192.0.2.1", "reserved"),
        ("2001:db8::1", "reserved"),
        ("169.254.169.254", "cloud metadata"),
        ("fd00:ec2::254", "cloud metadata"),
        ("100.100.100.200", "cloud metadata"),
        ("168.63.129.16", "cloud metadata"),
        ("::ffff:127.0.0.1", "loopback, as IPv4 inside IPv6"),
        ("::ffff:169.254.169.254", "cloud metadata, as IPv4 inside IPv6"),
        ("::ffff:10.0.0.1", "private, as IPv4 inside IPv6"),
        ("2002:7f00:1::1", "loopback, as IPv4 inside IPv6"),  # 6to4 of 127.0.0.1
        ("64:ff9b::a9fe:a9fe", "cloud metadata, as IPv4 inside IPv6"),  # NAT64 of 169.254.169.254
    ],
)
def test_non_public_addresses_are_named(address, kind):
    assert netguard.address_problem(address) == kind


@pytest.mark.parametrize(
    "address",
    ["8.8.8.8", "162.159.140.245", "2606:4700::1111", "::ffff:8.8.8.8", "2002:808:808::1"],
)
def test_public_addresses_pass(address):
    assert netguard.address_problem(address) is None


# --- Connect time: nothing reaches a private address ----------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:{port}/latest/meta-data",
        "http://localhost:{port}/",
        "http://LocalHost:{port}/",
        "http://[::1]:{port}/",
        "http://0.0.0.0:{port}/",
        "http://2130706433:{port}/",
        "http://0x7f.1:{port}/",
        "http://127.1:{port}/",
        "http://[::ffff:127.0.0.1]:{port}/",
        "http://[::ffff:7f00:1]:{port}/",
    ],
)
def test_loopback_in_any_spelling_is_refused_before_connecting(client, target, url):
    with pytest.raises(netguard.OutboundRefused, match="OUTBOUND_ALLOWED_ORIGINS"):
        client.get(url.format(port=target.port), headers={"authorization": "Bearer sk-test"})
    assert target.requests == []


def test_the_exact_allowed_origin_goes_through(client, target, settings):
    settings.OUTBOUND_ALLOWED_ORIGINS = [target.origin]
    assert client.get(f"{target.origin}/v1/models").status_code == 200
    assert [r["path"] for r in target.requests] == ["/v1/models"]


@pytest.mark.parametrize(
    "url",
    [
        "http://localhost:{port}/",  # same server, other host name: not the listed origin
        "http://[::ffff:127.0.0.1]:{port}/",
        "https://127.0.0.1:{port}/",  # other scheme
        "http://127.0.0.1:{other}/",  # other port
        "http://127.0.0.1.:{port}/",  # trailing dot: another name (refused, or unresolvable here)
    ],
)
def test_only_the_exact_origin_is_allowed(client, target, second, settings, url):
    settings.OUTBOUND_ALLOWED_ORIGINS = [target.origin]
    with pytest.raises(httpx2.ConnectError):  # OutboundRefused is one
        client.get(url.format(port=target.port, other=second.port))
    assert target.requests == [] and second.requests == []


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:{port}@evil.invalid/",
        "http://evil.invalid#@127.0.0.1:{port}/",
        "http://evil.invalid/?@127.0.0.1:{port}/",
    ],
)
def test_userinfo_and_query_tricks_do_not_borrow_the_allowed_origin(client, target, settings, url):
    settings.OUTBOUND_ALLOWED_ORIGINS = [target.origin]
    with pytest.raises(httpx2.ConnectError):  # the host is evil.invalid: it does not resolve
        client.get(url.format(port=target.port))
    assert target.requests == []


def test_a_redirect_is_not_followed_even_to_an_allowed_origin(client, target, second, settings):
    settings.OUTBOUND_ALLOWED_ORIGINS = [target.origin]
    target.reply = (302, {"location": f"{second.origin}/latest/meta-data"}, b"")
    response = client.get(f"{target.origin}/v1/models", follow_redirects=True)
    assert response.status_code == 302
    assert len(target.requests) == 1 and second.requests == []
    settings.OUTBOUND_ALLOWED_ORIGINS = [target.origin, second.origin]
    assert client.get(f"{target.origin}/v1/models", follow_redirects=True).status_code == 302
    assert second.requests == []


def test_the_environment_proxy_is_not_used(target, monkeypatch):
    """A proxy would connect on our behalf, unchecked: the guarded client ignores it."""
    monkeypatch.setenv("HTTP_PROXY", target.origin)
    monkeypatch.setenv("ALL_PROXY", target.origin)
    with netguard.guarded_client() as c, pytest.raises(httpx2.ConnectError):
        c.get("http://public-name.invalid/")
    assert target.requests == []


# --- One lookup, and the socket goes to the address that was checked -------------------


class RecordingBackend(httpcore2.MockBackend):
    """httpcore's own mock network: records where a connection was opened."""

    def __init__(self):
        super().__init__([b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"])
        self.connected_to: list[tuple[str, int]] = []

    def connect_tcp(self, host, port, timeout=None, local_address=None, socket_options=None):
        self.connected_to.append((host, port))
        return super().connect_tcp(host, port, timeout, local_address, socket_options)


def test_it_connects_to_the_checked_address_not_to_a_second_lookup():
    answers = [["93.184.215.14"], ["127.0.0.1"]]  # a rebinding DNS: public first, loopback next
    lookups = []

    def resolver(host, port):
        lookups.append(host)
        return answers[min(len(lookups) - 1, 1)]

    backend = RecordingBackend()
    transport = netguard.GuardedTransport(network_backend=backend, resolver=resolver)
    with netguard.guarded_client(transport=transport) as c:
        assert c.get("http://rebind.example/").text == "ok"
    assert lookups == ["rebind.example"]
    assert backend.connected_to == [("93.184.215.14", 80)]


@pytest.mark.parametrize(
    "answer", [["127.0.0.1"], ["93.184.215.14", "10.0.0.7"], ["169.254.169.254"]]
)
def test_a_name_with_any_private_address_is_refused(answer):
    backend = RecordingBackend()
    transport = netguard.GuardedTransport(
        network_backend=backend, resolver=lambda host, port: answer
    )
    with (
        netguard.guarded_client(transport=transport) as c,
        pytest.raises(netguard.OutboundRefused, match=PHRASE),
    ):
        c.get("http://internal.example/")
    assert backend.connected_to == []


# --- The async pool -----------------------------------------------------------------------


def test_the_async_client_is_guarded_too(target, settings):
    async def run():
        async with netguard.guarded_async_client() as c:
            with pytest.raises(netguard.OutboundRefused):
                await c.get(f"http://localhost:{target.port}/")
            settings.OUTBOUND_ALLOWED_ORIGINS = [target.origin]
            target.reply = (302, {"location": f"http://localhost:{target.port}/elsewhere"}, b"")
            return (await c.get(f"{target.origin}/v1/models", follow_redirects=True)).status_code

    assert asyncio.run(run()) == 302
    assert [r["path"] for r in target.requests] == ["/v1/models"]


# --- The allow-list setting and the form validator --------------------------------------


@pytest.mark.parametrize(
    "entry",
    [
        "127.0.0.1:8765",
        "http://127.0.0.1:8765/v1",
        "ftp://files.example",
        "http://user@127.0.0.1:8765",
    ],
)
def test_an_allow_list_entry_that_is_not_an_origin_is_a_clear_error(settings, entry):
    settings.OUTBOUND_ALLOWED_ORIGINS = [entry]
    with pytest.raises(ImproperlyConfigured, match="OUTBOUND_ALLOWED_ORIGINS.*scheme://host"):
        netguard.allowed_origins()


def test_allow_list_origins_are_normalised(settings):
    settings.OUTBOUND_ALLOWED_ORIGINS = ["HTTP://LLM.Example.com", "https://[::1]:8443/"]
    assert netguard.allowed_origins() == {
        netguard.Origin("http", "llm.example.com", 80),
        netguard.Origin("https", "::1", 8443),
    }


@pytest.mark.parametrize(
    "url",
    [
        "http://localhost:8000/v1",
        "http://10.0.0.5/v1",
        "http://[fd00:ec2::254]/",
        "http://169.254.169.254/latest/meta-data",
        "http://[::ffff:127.0.0.1]/",
    ],
)
def test_the_validator_refuses_private_destinations_with_the_fix(url):
    with pytest.raises(ValidationError) as caught:
        netguard.validate_outbound_url(url, label="Base URL")
    assert PHRASE in caught.value.messages[0] and caught.value.messages[0].startswith("Base URL")


def test_the_validator_accepts_public_unresolvable_and_allowed(settings):
    netguard.validate_outbound_url("https://8.8.8.8/v1")
    netguard.validate_outbound_url(
        "https://llm.not-resolvable.invalid/v1"
    )  # checked again at connect time
    settings.OUTBOUND_ALLOWED_ORIGINS = ["http://127.0.0.1:8765"]
    netguard.validate_outbound_url("http://127.0.0.1:8765/v1")


def test_the_validator_refuses_credentials_in_the_url():
    with pytest.raises(ValidationError, match="user or password"):
        netguard.validate_outbound_url("https://127.0.0.1:8765@llm.example.com/v1")


# --- The SDK's pools (platformadmin/openai/client.py) use the guard ------------------------


def _secret() -> str:
    return f"sk-proj-test{secrets.token_urlsafe(18)}"


@pytest.mark.django_db
def test_models_list_to_a_private_base_url_sends_nothing(project, target):
    key = make_api_key(
        project,
        secret=_secret(),
        provider="compatible",
        base_url=f"http://localhost:{target.port}/latest/meta-data",
    )
    result = models_list(api_key=key)
    assert not result.ok
    assert PHRASE in result.message and "internal-secret-model" not in result.message
    assert target.requests == []


@pytest.mark.django_db
def test_azure_endpoints_are_guarded(project, target):
    key = make_api_key(
        project,
        secret=secrets.token_hex(20),
        provider="azure",
        azure_endpoint=f"http://127.0.0.1:{target.port}",
        azure_api_version="2024-10-21",
    )
    result = models_list(api_key=key)
    assert not result.ok and PHRASE in result.message
    assert target.requests == []


@pytest.mark.django_db
def test_a_playground_call_to_a_private_address_is_refused_without_retries(project, target):
    project.max_retries = 3
    project.save()
    key = make_api_key(
        project, secret=_secret(), provider="compatible", base_url=f"http://[::1]:{target.port}/v1"
    )
    outcome = generate(
        api_key=key, project=project, params=GenerateParams(model="gpt-5.4-mini", input="hi")
    )
    assert not outcome.ok and PHRASE in outcome.message
    assert outcome.retries == 0
    assert target.requests == []


@pytest.mark.django_db
def test_an_allowed_origin_redirecting_elsewhere_is_not_followed(project, target, second, settings):
    settings.OUTBOUND_ALLOWED_ORIGINS = [target.origin]
    target.reply = (307, {"location": f"{second.origin}/v1/models"}, b"")
    key = make_api_key(
        project, secret=_secret(), provider="compatible", base_url=f"{target.origin}/v1"
    )
    result = models_list(api_key=key)
    assert not result.ok and "307" in result.message
    assert second.requests == [] and len(target.requests) == 1


@pytest.mark.django_db
def test_a_refused_test_connection_says_nothing_was_sent_and_leaves_the_breaker_alone(
    project, target, settings
):
    settings.OPENAI_BREAKER_FAILURE_THRESHOLD = 2
    key = make_api_key(
        project,
        secret=_secret(),
        provider="compatible",
        base_url=f"http://127.0.0.1:{target.port}/v1",
    )
    for _ in range(3):
        result = models_list(api_key=key)
        assert "the request was not sent, because 127.0.0.1 " + PHRASE in result.message
    assert CircuitBreaker.for_key(key).state().state == "closed"
    assert target.requests == []


# --- make run: exactly the simulator's origin is allowed -----------------------------------


def _ensure_env(tmp_path, sim_port: str) -> str:
    scripts = tmp_path / "scripts"
    scripts.mkdir(exist_ok=True)
    shutil.copy(ROOT / "scripts" / "ensure_env.py", scripts / "ensure_env.py")
    subprocess.run(
        [sys.executable, str(scripts / "ensure_env.py")],
        check=True,
        capture_output=True,
        env={**os.environ, "SIM_PORT": sim_port},
    )
    return (tmp_path / ".env").read_text()


def test_make_run_allows_exactly_the_simulators_origin(tmp_path):
    env = _ensure_env(tmp_path, "9123")
    assert "\nOPENAI_SIMULATOR_URL=http://127.0.0.1:9123/v1\n" in env
    assert "\nOUTBOUND_ALLOWED_ORIGINS=http://127.0.0.1:9123\n" in env


def test_an_older_demo_env_gets_the_simulators_origin_once(tmp_path):
    (tmp_path / ".env").write_text("DEBUG=true\nOPENAI_SIMULATOR_URL=http://127.0.0.1:8765/v1")
    _ensure_env(tmp_path, "")
    env = _ensure_env(tmp_path, "")
    assert env.count("OUTBOUND_ALLOWED_ORIGINS=") == 1
    assert env.endswith("\nOUTBOUND_ALLOWED_ORIGINS=http://127.0.0.1:8765\n")
