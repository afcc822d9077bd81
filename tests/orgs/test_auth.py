"""Sign-in: throttling on username + IP with a cool-off, audit of sign-ins, password reset."""

from __future__ import annotations

import datetime as dt
import re

import pytest
import time_machine
from django.conf import settings
from django.core import mail
from django.urls import reverse

from orgs.models import AuditEvent
from tests.factories import TEST_PASSWORD

pytestmark = pytest.mark.django_db

LOGIN = "/accounts/login/"
START = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)


def _login(client, username, password, ip="192.0.2.10"):
    return client.post(LOGIN, {"username": username, "password": password}, REMOTE_ADDR=ip)


def test_five_wrong_passwords_lock_that_username_and_ip_until_the_cool_off(client, owner):
    assert settings.AXES_FAILURE_LIMIT == 5
    cool_off = dt.timedelta(hours=settings.AXES_COOLOFF_TIME)
    with time_machine.travel(START, tick=False) as traveller:
        for _ in range(5):
            response = _login(client, "owner", "wrong password")
        assert AuditEvent.objects.filter(action="auth.login_failed").count() == 5
        # Locked: even the right password is refused from this address...
        locked = _login(client, "owner", TEST_PASSWORD)
        assert locked.status_code == 429
        assert "_auth_user_id" not in client.session
        assert AuditEvent.objects.filter(action="auth.locked_out").exists()
        # ...but not from another address (an attacker cannot lock the real user out).
        other = client.__class__()
        assert _login(other, "owner", TEST_PASSWORD, ip="198.51.100.7").status_code == 302
        # Failures during the lock do not extend it.
        traveller.shift(cool_off / 2)
        assert _login(client, "owner", "wrong again").status_code == 429
        traveller.shift(cool_off / 2 - dt.timedelta(seconds=5))
        assert _login(client, "owner", TEST_PASSWORD).status_code == 429
        traveller.shift(dt.timedelta(seconds=10))
        response = _login(client, "owner", TEST_PASSWORD)
        assert response.status_code == 302
        assert client.session["_auth_user_id"] == str(owner.pk)


def test_the_lock_is_per_username(client, owner, reader):
    with time_machine.travel(START, tick=False):
        for _ in range(5):
            _login(client, "owner", "wrong password")
        assert _login(client, "owner", TEST_PASSWORD).status_code == 429
        assert _login(client, "reader", TEST_PASSWORD).status_code == 302


def test_sign_ins_are_audited_with_ip_and_no_password(client, owner):
    _login(client, "owner", "hunter2-wrong", ip="203.0.113.5")
    _login(client, "owner", TEST_PASSWORD, ip="203.0.113.5")
    failed = AuditEvent.objects.get(action="auth.login_failed")
    ok = AuditEvent.objects.get(action="auth.login")
    assert failed.ip_address == ok.ip_address == "203.0.113.5"
    assert failed.detail == {"username": "owner"} and failed.target_id == str(owner.pk)
    assert ok.actor == owner
    assert "hunter2" not in str(failed.detail) + failed.actor_label + failed.target_label
    client.post(reverse("logout"), REMOTE_ADDR="203.0.113.5")
    assert AuditEvent.objects.filter(action="auth.logout", actor=owner).exists()


def test_failed_sign_in_of_an_unknown_user_is_audited(client, db):
    _login(client, "nobody", "x")
    event = AuditEvent.objects.get(action="auth.login_failed")
    assert event.actor is None and event.actor_label == "nobody" and event.target_id == ""


def test_password_reset_by_email(client, owner):
    response = client.post(reverse("password_reset"), {"email": owner.email})
    assert response.status_code == 302
    assert len(mail.outbox) == 1
    link = re.search(r"https?://[^/]+(/accounts/reset/\S+)", mail.outbox[0].body).group(1)
    page = client.get(link, follow=True)
    assert b"Choose a new password" in page.content
    new_password = "a brand new passphrase 77"
    done = client.post(
        page.redirect_chain[-1][0], {"new_password1": new_password, "new_password2": new_password}
    )
    assert done.status_code == 302
    owner.refresh_from_db()
    assert owner.check_password(new_password)
    assert AuditEvent.objects.filter(action="auth.password_reset", actor=owner).exists()


def test_password_reset_lifts_the_lock(client, owner):
    from axes.models import AccessAttempt

    for _ in range(5):
        _login(client, "owner", "wrong password", ip="127.0.0.1")
    assert AccessAttempt.objects.filter(username="owner").exists()
    client.post(reverse("password_reset"), {"email": owner.email})
    link = re.search(r"https?://[^/]+(/accounts/reset/\S+)", mail.outbox[0].body).group(1)
    page = client.get(link, follow=True)
    client.post(
        page.redirect_chain[-1][0],
        {"new_password1": "fresh passphrase 991", "new_password2": "fresh passphrase 991"},
    )
    assert not AccessAttempt.objects.filter(username="owner").exists()
    assert _login(client, "owner", "fresh passphrase 991", ip="127.0.0.1").status_code == 302


def test_unknown_email_reveals_nothing(client, db):
    response = client.post(reverse("password_reset"), {"email": "ghost@example.com"})
    assert response.status_code == 302 and len(mail.outbox) == 0
