"""A first wrong two-factor code is called wrong; only tries inside the throttle are "too many"."""

from __future__ import annotations

import datetime as dt

import pytest
import time_machine
from django.urls import reverse

from tests.factories import TEST_PASSWORD
from tests.orgs.test_otp import START, _set_up

pytestmark = pytest.mark.django_db


def test_the_first_wrong_code_says_wrong_and_a_quick_second_says_wait(client, owner):
    with time_machine.travel(START, tick=False) as traveller:
        _set_up(client, owner)
        client.logout()
        client.post("/accounts/login/", {"username": "owner", "password": TEST_PASSWORD})
        first = client.post(reverse("otp-verify"), {"token": "000000"}).content.decode()
        assert "Wrong or expired code" in first and "Too many" not in first
        second = client.post(reverse("otp-verify"), {"token": "000000"}).content.decode()
        assert "Too many wrong codes" in second
        traveller.shift(dt.timedelta(seconds=61))
        third = client.post(reverse("otp-verify"), {"token": "000000"}).content.decode()
        assert "Wrong or expired code" in third
