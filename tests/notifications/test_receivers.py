"""The test receivers themselves: mail really arrives over SMTP, requests over HTTP, and a
wrong signature is caught (so the delivery tests that rely on them can fail)."""

from __future__ import annotations

import threading

import httpx2
from django.core.mail import send_mail

from tests.notifications.receivers import expected_signature


def test_the_smtp_receiver_gets_mail_sent_through_django(smtp_receiver):
    send_mail("Budget at 80 %", "Spend is $80.00.", "console@example.com", ["o@example.com"])
    [mail] = smtp_receiver.wait_for(1)
    assert mail.rcpt_tos == ["o@example.com"]
    assert mail.subject == "Budget at 80 %"
    assert "Spend is $80.00." in mail.text


def test_the_webhook_receiver_checks_the_signature(webhook_receiver):
    webhook_receiver.secret = "whsec-test-secret"
    body = b'{"schema": "console.notification/v1"}'
    good = {"X-Console-Signature": expected_signature("whsec-test-secret", body)}
    bad = {"X-Console-Signature": expected_signature("another-secret", body)}
    with httpx2.Client() as client:
        assert client.post(webhook_receiver.url(), content=body, headers=good).status_code == 200
        client.post(webhook_receiver.url(), content=body, headers=bad)
    first, second = webhook_receiver.received()
    assert first.signature_valid is True
    assert second.signature_valid is False
    assert first.json() == {"schema": "console.notification/v1"}


def test_the_webhook_receiver_answers_the_statuses_it_is_given(webhook_receiver):
    webhook_receiver.statuses = [503]
    with httpx2.Client() as client:
        assert client.post(webhook_receiver.url(), content=b"{}").status_code == 503
        assert client.post(webhook_receiver.url(), content=b"{}").status_code == 200


def test_a_held_request_is_recorded_before_it_is_answered(webhook_receiver):
    webhook_receiver.hold(1)
    answers = []

    def post() -> None:
        with httpx2.Client(timeout=30) as client:
            answers.append(client.post(webhook_receiver.url(), content=b"{}").status_code)

    thread = threading.Thread(target=post)
    thread.start()
    assert webhook_receiver.arrived.wait(10)
    assert len(webhook_receiver.received()) == 1 and answers == []
    webhook_receiver.release()
    thread.join(10)
    assert answers == [200]
