"""A hostile upstream echoes the credential it received; the console shows, logs and
stores it nowhere.

One marker secret per key format the console stores (an OpenAI project key, Azure keys
of both generations, an OpenAI-compatible key full of characters that change under
encoding, an admin-key shape and an ingestion-token shape in compatible keys). The
simulator's ``fault-echo`` answers every call with a 401 whose message and parameter
carry the credential plainly, URL-encoded and in base64. Then every place a person or a
file could see it is read: the key page, the audit page and CSV (reader and owner), the
playground's result, the Django admin, the message cookie, the log records and the
console handler's output, every audit and history row, ``dumpdata`` and a raw read of
every table.
"""

from __future__ import annotations

import base64
import html
import io
import json
import logging
import secrets
import string
from urllib.parse import quote, quote_plus

import pytest
from django.contrib.messages.storage.cookie import CookieStorage
from django.core.management import call_command
from django.db import connection
from django.test import RequestFactory
from django.urls import reverse

from keys.models import APIKeyEvent
from orgs.models import AuditEvent
from tests.factories import UserFactory, make_api_key
from usage.models import UsageRecord

pytestmark = pytest.mark.django_db


def _alnum(n: int) -> str:
    return "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(n))


def _markers() -> dict[str, tuple[str, dict]]:
    """name -> (secret, how the key is stored), each fresh per test."""
    return {
        "openai-project": (f"sk-proj-{_alnum(40)}", {"provider": "openai"}),
        "azure-32-hex": (secrets.token_hex(16), {"provider": "azure"}),
        "azure-84": (_alnum(84), {"provider": "azure"}),
        "compatible": (
            f"c0mp/{_alnum(10)}+x=y&z\"<q>\\{_alnum(10)}%7e:'",
            {"provider": "compatible"},
        ),
        "admin-shape": (f"sk-admin-{_alnum(40)}", {"provider": "compatible"}),
        "ingestion-shape": (
            f"ingest_{secrets.token_hex(6)}_{secrets.token_urlsafe(32)}",
            {"provider": "compatible"},
        ),
    }


MARKER_NAMES = list(_markers())


def forms_of(secret: str) -> list[str]:
    """Every spelling in which a leak would still give the secret away."""
    raw = secret.encode()
    found = {
        secret,
        quote(secret, safe=""),
        quote_plus(secret, safe=""),
        json.dumps(secret)[1:-1],
        html.escape(secret),
        html.escape(secret, quote=False),
        base64.b64encode(raw).decode().rstrip("="),
        base64.urlsafe_b64encode(raw).decode().rstrip("="),
        secret[-16:],  # the tail alone (the stored hint keeps only the last four characters)
    }
    return [f for f in found if len(f) >= 8]


def assert_absent(text: str, secret: str, where: str) -> None:
    for variant in (text, html.unescape(text)):
        for form in forms_of(secret):
            assert form not in variant, f"the secret ({form!r}) leaked into {where}"


@pytest.fixture
def marker(request, project, openai_simulator):
    """(name, secret, stored key) for the parametrized marker; the upstream echoes."""
    name = request.param
    secret, kwargs = _markers()[name]
    if kwargs["provider"] == "azure":
        kwargs.update(azure_endpoint=openai_simulator.root_url, azure_api_version="2024-10-21")
    else:
        kwargs.update(base_url=openai_simulator.base_url)
    key = make_api_key(project, secret=secret, **kwargs)
    openai_simulator.force_faults = {"echo"}
    return name, secret, key


@pytest.fixture
def console_output():
    """What the configured console handler writes (its filters and formatter included)."""
    handler = next(h for h in logging.getLogger().handlers if h.get_name() == "console")
    buffer = io.StringIO()
    previous = handler.setStream(buffer)
    yield buffer
    handler.setStream(previous)


def _every_table_as_text() -> str:
    """A raw read of every column of every table of the test database."""
    chunks = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")
            chunks.extend(repr(row) for row in cursor.fetchall())
    return "\n".join(chunks)


def _cookies_as_text(client) -> str:
    """The cookies, and the messages inside the (signed, maybe compressed) message cookie."""
    parts = [morsel.value for morsel in client.cookies.values()]
    storage = CookieStorage(RequestFactory().get("/"))
    for morsel in client.cookies.values():
        if morsel.key == storage.cookie_name:
            parts.extend(str(m) for m in storage._decode(morsel.value) or [])
    return "\n".join(parts)


@pytest.mark.parametrize("marker", MARKER_NAMES, indirect=True)
def test_an_echoed_key_reaches_no_page_log_row_cookie_or_dump(
    marker, client, owner, reader, member, project, openai_simulator, caplog, console_output
):
    name, secret, key = marker
    caplog.set_level(logging.DEBUG)

    # Test connection from the key page (the flash message travels in a cookie).
    client.force_login(owner)
    page = client.post(reverse("keys:key-test", kwargs={"key_id": key.public_id}), follow=True)
    assert page.status_code == 200
    assert openai_simulator.requests >= 1, "the call must reach the hostile upstream"
    assert "Test connection:" in page.content.decode()
    assert_absent(page.content.decode(), secret, "the key page after a test")
    assert_absent(_cookies_as_text(client), secret, "the cookies")
    fragment = client.post(
        reverse("keys:key-test", kwargs={"key_id": key.public_id}), HTTP_HX_REQUEST="true"
    )
    assert_absent(fragment.content.decode(), secret, "the test result fragment")
    detail = client.get(reverse("keys:key-detail", kwargs={"key_id": key.public_id}))
    assert_absent(detail.content.decode(), secret, "the key page")

    # The playground, plain and streamed, as a project member.
    client.force_login(member)
    form = {
        "project": str(project.public_id),
        "api_key": str(key.public_id),
        "model": "gpt-5.4-mini",
        "input": "hello",
        "instructions": "",
        "temperature": "",
        "max_output_tokens": "",
        "reasoning_effort": "",
    }
    run = client.post(reverse("playground:run"), form)
    assert run.status_code == 200 and "401" in run.content.decode()
    assert_absent(run.content.decode(), secret, "the playground result")
    stream = client.post(reverse("playground:stream"), form)
    assert_absent(
        b"".join(stream.streaming_content).decode(), secret, "the streamed playground result"
    )

    # The audit log, on the page and in the CSV, for a reader and for the owner.
    for user in (reader, owner):
        client.force_login(user)
        audit = client.get(
            reverse("orgs:audit-log", kwargs={"org_id": project.organization.public_id})
        )
        assert audit.status_code == 200 and "key.test" in audit.content.decode()
        assert_absent(audit.content.decode(), secret, f"the audit page of {user}")
        export = client.get(
            reverse("orgs:audit-export", kwargs={"org_id": project.organization.public_id})
        )
        csv_text = b"".join(export.streaming_content).decode()
        assert "key.test" in csv_text
        assert_absent(csv_text, secret, f"the audit CSV of {user}")

    # The Django admin, for a superuser.
    admin_user = UserFactory(is_staff=True, is_superuser=True)
    client.force_login(admin_user)
    for url in (
        reverse("admin:orgs_auditevent_changelist"),
        reverse("admin:keys_apikeyevent_changelist"),
        reverse("admin:keys_apikey_changelist"),
        reverse("admin:usage_usagerecord_changelist"),
        reverse("admin:keys_apikey_change", args=[key.pk]),
    ):
        response = client.get(url)
        assert response.status_code == 200, url
        assert_absent(response.content.decode(), secret, url)
    for event in AuditEvent.objects.filter(action="key.test"):
        response = client.get(reverse("admin:orgs_auditevent_change", args=[event.pk]))
        assert response.status_code == 200
        assert_absent(response.content.decode(), secret, "an audit event's admin page")

    # What was stored and logged.
    events = list(AuditEvent.objects.filter(action="key.test"))
    assert len(events) == 2 and all(e.detail["ok"] is False for e in events)
    assert all(e.detail["message"] for e in events), "the failure is still explained"
    for event in AuditEvent.objects.all():
        assert_absent(
            json.dumps(event.detail) + event.target_label, secret, f"audit row {event.action}"
        )
    for history in APIKeyEvent.objects.filter(api_key=key):
        assert_absent(
            history.note + history.old_hint + history.new_hint, secret, "the key's history"
        )
    assert UsageRecord.objects.filter(api_key=key).count() == 2
    for record in UsageRecord.objects.filter(api_key=key).values():
        assert_absent(repr(record), secret, "a usage record")
    assert caplog.records, "the calls are logged"
    for record in caplog.records:
        assert_absent(
            record.getMessage() + (record.exc_text or ""), secret, f"the log record {record.name}"
        )
    assert_absent(caplog.text, secret, "the captured log")
    assert_absent(console_output.getvalue(), secret, "the console handler's output")
    dump = io.StringIO()
    call_command("dumpdata", stdout=dump)
    assert "key.test" in dump.getvalue()
    assert_absent(dump.getvalue(), secret, "dumpdata")
    assert_absent(_every_table_as_text(), secret, "a raw read of the tables")


@pytest.mark.parametrize("marker", ["azure-32-hex", "compatible"], indirect=True)
def test_the_failure_is_still_explained(marker, client, owner):
    """Scrubbing keeps the upstream's words around the secret."""
    _, secret, key = marker
    client.force_login(owner)
    client.post(reverse("keys:key-test", kwargs={"key_id": key.public_id}))
    message = AuditEvent.objects.get(action="key.test").detail["message"]
    assert (
        "Incorrect API key provided: …[redacted] (url-encoded: …[redacted]; base64: …[redacted]"
        in message
    )
    assert key.hint in message and "(401)" in message


@pytest.mark.parametrize("marker", ["compatible", "azure-32-hex"], indirect=True)
def test_an_echo_inside_a_successful_reply_is_not_shown(marker, client, owner, openai_simulator):
    _, secret, key = marker
    openai_simulator.force_faults = {"echo200"}
    client.force_login(owner)
    page = client.post(
        reverse("keys:key-test", kwargs={"key_id": key.public_id}), HTTP_HX_REQUEST="true"
    )
    assert "Connection works" in page.content.decode()
    assert_absent(page.content.decode(), secret, "the model ids of a successful test")
