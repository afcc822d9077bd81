"""Real receivers for notification tests: a local SMTP server and a local HTTP receiver.

Both listen on 127.0.0.1 on an ephemeral port (port 0) and record what they got, so a
test (or a Celery worker in another process) delivers to them over the network, exactly
as to a real mail relay or webhook endpoint. No mock of our code or of Django's mail.

Use them as fixtures (import them into your conftest.py)::

    from tests.notifications.receivers import smtp_receiver, webhook_receiver  # noqa: F401

``smtp_receiver`` points Django's mail (``MAILERS``) at the server for the test;
``webhook_receiver`` adds its origin to ``OUTBOUND_ALLOWED_ORIGINS`` (the outgoing-request
guard refuses loopback otherwise). ``webhook_receiver.secrets[path] = secret`` (or
``.secret`` for every path) makes it check ``X-Console-Signature`` the way
docs/notifications.md tells a receiver to; each request records whether it verified.
"""

from __future__ import annotations

import email
import email.policy
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from aiosmtpd.controller import Controller

HOST = "127.0.0.1"


def wait_for(predicate: Callable[[], Any], *, timeout: float = 30.0, every: float = 0.05) -> Any:
    """Poll ``predicate`` until it returns something truthy (returned) or ``timeout``
    passes (then the last value, falsy, so the caller's assertion names what is missing).
    A deadline, not a timed assertion: fast machines return at once."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(every)


# --- SMTP ---------------------------------------------------------------------------------


@dataclass
class ReceivedMail:
    """One SMTP transaction: the envelope and the parsed message."""

    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage

    @property
    def subject(self) -> str:
        return str(self.message["Subject"] or "")

    @property
    def text(self) -> str:
        part = self.message.get_body(preferencelist=("plain", "html"))
        return part.get_content() if part is not None else ""


class _Handler:
    def __init__(self, receiver: SMTPReceiver) -> None:
        self.receiver = receiver

    async def handle_DATA(self, server, session, envelope) -> str:
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        with self.receiver._lock:
            self.receiver.messages.append(
                ReceivedMail(envelope.mail_from, list(envelope.rcpt_tos), message)
            )
        return "250 Message accepted for delivery"


class _EphemeralController(Controller):
    """aiosmtpd's controller on port 0: the bound port is read back before the
    controller's own start-up probe connects to it."""

    def _trigger_server(self) -> None:
        assert self.server is not None
        self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()


class SMTPReceiver:
    """A real SMTP server (aiosmtpd) in a thread, keeping every message it accepts."""

    def __init__(self) -> None:
        self.messages: list[ReceivedMail] = []
        self._lock = threading.Lock()
        self._controller = _EphemeralController(_Handler(self), hostname=HOST, port=0)

    def start(self) -> SMTPReceiver:
        self._controller.start()
        return self

    def stop(self) -> None:
        self._controller.stop()

    @property
    def host(self) -> str:
        return HOST

    @property
    def port(self) -> int:
        return self._controller.port

    @property
    def email_url(self) -> str:
        """For a subprocess's ``EMAIL_URL`` (plain SMTP, no auth)."""
        return f"smtp://{HOST}:{self.port}"

    @property
    def mailers(self) -> dict:
        """Django 6.1 ``MAILERS`` pointing at this server."""
        return {
            "default": {
                "BACKEND": "django.core.mail.backends.smtp.EmailBackend",
                "OPTIONS": {"host": HOST, "port": self.port, "timeout": 10},
            }
        }

    def reset(self) -> None:
        with self._lock:
            self.messages.clear()

    def received(self) -> list[ReceivedMail]:
        with self._lock:
            return list(self.messages)

    def wait_for(self, count: int = 1, *, timeout: float = 30.0) -> list[ReceivedMail]:
        """The messages once at least ``count`` arrived (or what arrived by ``timeout``)."""
        wait_for(lambda: len(self.received()) >= count, timeout=timeout)
        return self.received()


# --- HTTP ---------------------------------------------------------------------------------


@dataclass
class ReceivedRequest:
    """One HTTP request the receiver got."""

    method: str
    path: str
    headers: dict[str, str]  # lower-case names
    body: bytes
    signature_valid: bool | None  # None: no secret configured for this path
    status: int  # what the receiver answered (or was going to, if held)

    @property
    def idempotency_key(self) -> str:
        return self.headers.get("idempotency-key", "")

    def json(self) -> Any:
        return json.loads(self.body)


def expected_signature(secret: str, body: bytes) -> str:
    """What docs/notifications.md says the header holds: sha256=<hex HMAC of the body>."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class WebhookReceiver:
    """A real HTTP server in a thread, recording each request and checking signatures.

    - ``secret`` / ``secrets[path]``: the signing secret to verify ``X-Console-Signature``
      with (constant-time compare, as a real receiver must);
    - ``statuses``: status codes to answer, one per request in order (then 200), e.g.
      ``[500, 500]`` to make the first two attempts fail; an entry may be
      ``(status, body_bytes)`` to answer with that body (an echo of what was sent), or
      ``(status, body_bytes, {header: value})`` with headers too (``Retry-After``);
    - ``hold(count=1)``: the next ``count`` requests are recorded, then held open until
      ``release()`` (or the client goes away): a worker can be killed mid-delivery.
      ``arrived`` is set when a held request has been recorded.
    """

    def __init__(self) -> None:
        self.requests: list[ReceivedRequest] = []
        self.secret: str | None = None
        self.secrets: dict[str, str] = {}
        self.statuses: list[int | tuple] = []
        self.arrived = threading.Event()
        self._release = threading.Event()
        self._release.set()
        self._hold_left = 0
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                receiver._handle(self)

            do_PUT = do_POST  # noqa: N815

            def log_message(self, format: str, *args) -> None:  # quiet
                return

        self._server = ThreadingHTTPServer((HOST, 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self) -> WebhookReceiver:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.release()
        self._server.shutdown()
        self._server.server_close()

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    @property
    def origin(self) -> str:
        return f"http://{HOST}:{self.port}"

    def url(self, path: str = "/hook") -> str:
        return self.origin + path

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
            self.statuses.clear()
            self.secret = None
            self.secrets.clear()
            self._hold_left = 0
        self.arrived.clear()
        self._release.set()

    def hold(self, count: int = 1) -> None:
        with self._lock:
            self._hold_left = count
        self.arrived.clear()
        self._release.clear()

    def release(self) -> None:
        self._release.set()

    def received(self) -> list[ReceivedRequest]:
        with self._lock:
            return list(self.requests)

    def wait_for(self, count: int = 1, *, timeout: float = 30.0) -> list[ReceivedRequest]:
        wait_for(lambda: len(self.received()) >= count, timeout=timeout)
        return self.received()

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        headers = {name.lower(): value for name, value in handler.headers.items()}
        path = handler.path.split("?", 1)[0]
        with self._lock:
            secret = self.secrets.get(path, self.secret)
            status = self.statuses.pop(0) if self.statuses else 200
            answer, extra = None, {}
            if isinstance(status, tuple):
                status, answer, *rest = status
                extra = rest[0] if rest else {}
            held = self._hold_left > 0
            if held:
                self._hold_left -= 1
            valid = None
            if secret is not None:
                valid = hmac.compare_digest(
                    headers.get("x-console-signature", ""), expected_signature(secret, body)
                )
            self.requests.append(
                ReceivedRequest(handler.command, path, headers, body, valid, status)
            )
        if held:
            self.arrived.set()
            self._release.wait(timeout=120)
        if answer is None:
            answer = json.dumps({"ok": 200 <= status < 300}).encode()
        try:
            handler.send_response(status)
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", str(len(answer)))
            for name, value in extra.items():
                handler.send_header(name, value)
            handler.end_headers()
            handler.wfile.write(answer)
        except OSError:
            pass  # the client went away (a killed worker): nothing to answer


# --- Fixtures -------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def _smtp_receiver_server() -> Iterator[SMTPReceiver]:
    server = SMTPReceiver().start()
    yield server
    server.stop()


@pytest.fixture
def smtp_receiver(_smtp_receiver_server: SMTPReceiver, settings) -> SMTPReceiver:
    """A real SMTP server; Django's mail goes to it for this test (messages reset)."""
    settings.MAILERS = _smtp_receiver_server.mailers
    _smtp_receiver_server.reset()
    return _smtp_receiver_server


@pytest.fixture(scope="session")
def _webhook_receiver_server() -> Iterator[WebhookReceiver]:
    server = WebhookReceiver().start()
    yield server
    server.stop()


@pytest.fixture
def webhook_receiver(_webhook_receiver_server: WebhookReceiver, settings) -> WebhookReceiver:
    """A real HTTP receiver on loopback, allowed by the outgoing-request guard for this
    test only (its exact origin), with its records, statuses, secrets and holds reset."""
    receiver = _webhook_receiver_server
    receiver.reset()
    allowed = list(getattr(settings, "OUTBOUND_ALLOWED_ORIGINS", []) or [])
    settings.OUTBOUND_ALLOWED_ORIGINS = [*allowed, receiver.origin]
    yield receiver
    receiver.reset()


@dataclass
class Receivers:
    """Both receivers at once (the browser test and the worker tests use both)."""

    smtp: SMTPReceiver
    webhook: WebhookReceiver
    extra: dict[str, Any] = field(default_factory=dict)


@pytest.fixture
def receivers(smtp_receiver: SMTPReceiver, webhook_receiver: WebhookReceiver) -> Receivers:
    return Receivers(smtp_receiver, webhook_receiver)
