"""docs/notifications.md's receiver example, run against a body the console really signs:
the documented way to verify is the way that works."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest
import time_machine

from platformadmin.notifications import signing
from platformadmin.notifications.services import (
    notification_channel_create,
    notifications_enqueue,
)
from platformadmin.notifications.transports import SCHEMA, webhook_body

pytestmark = pytest.mark.django_db

DOC = Path(__file__).resolve().parents[2] / "docs" / "notifications.md"


def receiver_example(secret: str) -> dict:
    text = DOC.read_text()
    [code] = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    code = code.replace('b"whsec_..."', repr(secret.encode()))
    namespace: dict = {}
    exec(compile(code, str(DOC), "exec"), namespace)  # noqa: S102 (our own documentation)
    return namespace


def test_the_documented_receiver_accepts_a_signed_body_once(organization, owner, settings):
    settings.OUTBOUND_ALLOWED_ORIGINS = ["http://127.0.0.1:9"]
    created = notification_channel_create(
        organization=organization,
        actor=owner,
        kind="webhook",
        name="Hook",
        url="http://127.0.0.1:9/hook",
    )
    [row] = notifications_enqueue(
        organization=organization,
        kind="budget.threshold",
        subject="budget:1",
        period="2026-12",
        stage="80",
        title="Budget 80% reached",
        body="…",
        payload={},
    )
    with time_machine.travel("2026-12-02 09:00Z", tick=False) as traveller:
        now = int(time.time())
        body = webhook_body(row, attempt=1, timestamp=now)
        headers = {
            "X-Console-Signature": signing.signature(created.signing_secret, body),
            "X-Console-Timestamp": str(now),
            "Idempotency-Key": row.unique_key,
        }
        handle = receiver_example(created.signing_secret)["handle"]
        assert handle(body, headers) == 200
        assert handle(body, headers) == 200  # the retry is dropped
        assert handle(body + b" ", headers) == 401  # the body changed
        wrong = {**headers, "X-Console-Signature": signing.signature("other", body)}
        assert handle(body, wrong) == 401
        traveller.shift(600)
        assert handle(body, {**headers, "Idempotency-Key": "new"}) == 400  # too old
    assert SCHEMA in DOC.read_text()


def test_every_body_field_is_documented(organization, owner):
    [row, *_] = notifications_enqueue(
        organization=organization,
        kind="budget.forecast",
        subject="budget:1",
        period="2026-12",
        stage="forecast",
        title="t",
        body="b",
        payload={},
    )
    fields = json.loads(webhook_body(row, attempt=1, timestamp=0))
    text = DOC.read_text()
    for name in fields:
        assert f"| `{name}` |" in text, f"{name} is not in the body table of {DOC.name}"
