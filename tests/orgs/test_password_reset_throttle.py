"""Password reset requests are throttled per client address and per target e-mail
(orgs/views_auth.py): over a limit the same answer, and no e-mail.

Each test runs at its own hour (time-machine), so the counters it leaves in the shared
cache never meet another test's.
"""

from __future__ import annotations

import datetime as dt

import pytest
import time_machine
from django.conf import settings
from django.core import mail
from django.test import Client
from django.urls import reverse

from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

URL = "/accounts/password-reset/"


def _at(day: int) -> dt.datetime:
    return dt.datetime(2026, 4, day, 10, 0, tzinfo=dt.UTC)


def _ask(email: str, ip: str):
    return Client().post(URL, {"email": email}, REMOTE_ADDR=ip)


def test_thirty_requests_for_one_account_send_the_limit_of_emails(owner):
    with time_machine.travel(_at(1), tick=False):
        responses = [_ask(owner.email, "203.0.113.5") for _ in range(30)]
    assert len(mail.outbox) == settings.PASSWORD_RESET_LIMIT_PER_EMAIL
    # Throttled or not, the answer is the same: nothing tells an attacker which.
    assert {(r.status_code, r["Location"]) for r in responses} == {
        (302, reverse("password_reset_done"))
    }


def test_the_target_is_counted_across_addresses(owner):
    with time_machine.travel(_at(2), tick=False):
        for n in range(10):
            _ask(owner.email, f"198.51.100.{n + 1}")
    assert len(mail.outbox) == settings.PASSWORD_RESET_LIMIT_PER_EMAIL


def test_the_address_is_counted_across_targets(db):
    users = [UserFactory(username=f"u{n}", email=f"u{n}@example.com") for n in range(12)]
    with time_machine.travel(_at(3), tick=False):
        for user in users[:11]:
            _ask(user.email, "203.0.113.9")
        assert len(mail.outbox) == settings.PASSWORD_RESET_LIMIT_PER_ADDRESS
        _ask(users[11].email, "198.51.100.200")  # someone else, elsewhere: not throttled
    assert len(mail.outbox) == settings.PASSWORD_RESET_LIMIT_PER_ADDRESS + 1
    assert mail.outbox[-1].to == [users[11].email]


def test_unknown_addresses_count_too_so_the_throttle_reveals_nothing(db):
    with time_machine.travel(_at(4), tick=False):
        for n in range(settings.PASSWORD_RESET_LIMIT_PER_ADDRESS):
            _ask(f"ghost{n}@example.com", "203.0.113.9")
        user = UserFactory(username="real", email="real@example.com")
        _ask(user.email, "203.0.113.9")
    assert mail.outbox == []


def test_the_target_limit_ignores_case_and_spaces(owner):
    with time_machine.travel(_at(5), tick=False):
        for variant in [owner.email, owner.email.upper(), f"  {owner.email} ", owner.email.title()]:
            _ask(variant, "203.0.113.5")
    assert len(mail.outbox) == settings.PASSWORD_RESET_LIMIT_PER_EMAIL


def test_the_throttle_lifts_after_the_window(owner):
    window = dt.timedelta(minutes=settings.PASSWORD_RESET_THROTTLE_WINDOW_MINUTES)
    with time_machine.travel(_at(6), tick=False) as traveller:
        for _ in range(settings.PASSWORD_RESET_LIMIT_PER_EMAIL + 2):
            _ask(owner.email, "203.0.113.5")
        assert len(mail.outbox) == settings.PASSWORD_RESET_LIMIT_PER_EMAIL
        traveller.shift(window)
        _ask(owner.email, "203.0.113.5")
    assert len(mail.outbox) == settings.PASSWORD_RESET_LIMIT_PER_EMAIL + 1


def test_a_bad_email_is_a_form_error_not_a_500(db):
    response = Client().post(URL, {"email": "not an address"}, REMOTE_ADDR="203.0.113.5")
    assert response.status_code == 200
    assert "email" in response.context["form"].errors
