"""Sign-in locks per account across addresses, per address across accounts, and the
client address behind a trusted proxy (orgs/lockout.py)."""

from __future__ import annotations

import datetime as dt
import re

import pytest
import time_machine
from django.conf import settings
from django.core import mail
from django.test import Client
from django.urls import reverse

from orgs.lockout import forwarded_client, parse_networks
from tests.factories import TEST_PASSWORD, UserFactory

pytestmark = pytest.mark.django_db

LOGIN = "/accounts/login/"
START = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)
PROXY = "10.0.0.2"


def _login(username, password, ip, **extra):
    """Each try from a fresh client, as a botnet's would be."""
    return Client().post(
        LOGIN, {"username": username, "password": password}, REMOTE_ADDR=ip, **extra
    )


def _cool_off() -> dt.timedelta:
    return dt.timedelta(hours=settings.AXES_COOLOFF_TIME)


def test_the_limits_are_ordered():
    assert settings.AXES_FAILURE_LIMIT < settings.SIGNIN_ACCOUNT_FAILURE_LIMIT
    assert settings.AXES_FAILURE_LIMIT < settings.SIGNIN_ADDRESS_FAILURE_LIMIT


def test_one_account_tried_from_many_addresses_locks_for_the_cool_off_only(owner):
    limit = settings.SIGNIN_ACCOUNT_FAILURE_LIMIT
    with time_machine.travel(START, tick=False) as traveller:
        codes = [_login("owner", "guess", f"198.51.100.{n + 1}").status_code for n in range(limit)]
        assert codes == [200] * (limit - 1) + [429]  # the failure that reaches the limit locks
        # Locked for every address, the owner's own included...
        assert _login("owner", TEST_PASSWORD, "203.0.113.50").status_code == 429
        # ...while other accounts are not.
        UserFactory(username="colleague")
        assert _login("colleague", TEST_PASSWORD, "203.0.113.50").status_code == 302
        # The attack goes on during the lock from new addresses: it does not extend it.
        traveller.shift(_cool_off() / 2)
        for n in range(30):
            assert _login("owner", "guess", f"192.0.2.{n + 1}").status_code == 429
        traveller.shift(_cool_off() / 2 - dt.timedelta(seconds=5))
        assert _login("owner", TEST_PASSWORD, "203.0.113.50").status_code == 429
        traveller.shift(dt.timedelta(seconds=10))
        assert _login("owner", TEST_PASSWORD, "203.0.113.50").status_code == 302


def test_forty_addresses_do_not_get_forty_guesses(owner):
    with time_machine.travel(START, tick=False):
        codes = [_login("owner", "guess", f"198.51.100.{n + 1}").status_code for n in range(40)]
    limit = settings.SIGNIN_ACCOUNT_FAILURE_LIMIT
    assert codes == [200] * (limit - 1) + [429] * (40 - limit + 1)


def test_one_address_over_many_accounts_is_locked(db):
    users = [UserFactory(username=f"user{n}") for n in range(8)]
    per_account = settings.AXES_FAILURE_LIMIT - 1  # stays under the (account, address) lock
    codes = []
    with time_machine.travel(START, tick=False) as traveller:
        for user in users:
            for _ in range(per_account):
                codes.append(_login(user.username, "guess", "203.0.113.9").status_code)
        limit = settings.SIGNIN_ADDRESS_FAILURE_LIMIT
        assert codes == [200] * (limit - 1) + [429] * (len(codes) - limit + 1)
        # From that address even a right password waits; from another it does not.
        assert _login("user0", TEST_PASSWORD, "203.0.113.9").status_code == 429
        assert _login("user0", TEST_PASSWORD, "198.51.100.1").status_code == 302
        traveller.shift(_cool_off() + dt.timedelta(seconds=5))
        assert _login("user7", TEST_PASSWORD, "203.0.113.9").status_code == 302


def test_signing_into_an_own_account_does_not_wipe_the_address_count(db):
    """axes' stock reset on success would delete every failure from the address."""
    UserFactory(username="mallory")
    victims = [UserFactory(username=f"victim{n}") for n in range(6)]
    attacker = "203.0.113.66"
    with time_machine.travel(START, tick=False):
        for victim in victims[:4]:
            for _ in range(settings.AXES_FAILURE_LIMIT - 1):
                _login(victim.username, "guess", attacker)
        assert _login("mallory", TEST_PASSWORD, attacker).status_code == 302
        # 16 failures before the sign-in, 4 after: the 20th locks the address.
        codes = [
            _login(victim.username, "guess", attacker).status_code
            for victim in (victims[4], victims[4], victims[5], victims[5])
        ]
        assert codes == [200, 200, 200, 429]


def test_a_password_reset_lifts_an_account_lock_caused_from_elsewhere(client, owner):
    with time_machine.travel(START, tick=False):
        for n in range(settings.SIGNIN_ACCOUNT_FAILURE_LIMIT):
            _login("owner", "guess", f"198.51.100.{n + 1}")
        assert _login("owner", TEST_PASSWORD, "203.0.113.50").status_code == 429
        client.post(reverse("password_reset"), {"email": owner.email}, REMOTE_ADDR="203.0.113.50")
        link = re.search(r"https?://[^/]+(/accounts/reset/\S+)", mail.outbox[0].body).group(1)
        page = client.get(link, follow=True, REMOTE_ADDR="203.0.113.50")
        client.post(
            page.redirect_chain[-1][0],
            {"new_password1": "fresh passphrase 991", "new_password2": "fresh passphrase 991"},
            REMOTE_ADDR="203.0.113.50",
        )
        assert _login("owner", "fresh passphrase 991", "203.0.113.50").status_code == 302


# --- The client address behind a proxy ---------------------------------------------


def test_behind_a_trusted_proxy_an_attacker_locks_only_themselves(owner, settings):
    settings.TRUSTED_PROXY_IPS = [PROXY]
    with time_machine.travel(START, tick=False):
        for _ in range(settings.AXES_FAILURE_LIMIT):
            _login("owner", "guess", PROXY, HTTP_X_FORWARDED_FOR="198.51.100.77")
        assert (
            _login("owner", TEST_PASSWORD, PROXY, HTTP_X_FORWARDED_FOR="198.51.100.77").status_code
            == 429
        )
        # The real user comes through the same proxy from their own address.
        assert (
            _login("owner", TEST_PASSWORD, PROXY, HTTP_X_FORWARDED_FOR="203.0.113.50").status_code
            == 302
        )


def test_the_forwarded_header_of_an_untrusted_client_is_ignored(owner, settings):
    settings.TRUSTED_PROXY_IPS = [PROXY]
    with time_machine.travel(START, tick=False):
        for n in range(settings.AXES_FAILURE_LIMIT):
            # A made-up header per try does not give the attacker fresh addresses.
            _login("owner", "guess", "198.51.100.77", HTTP_X_FORWARDED_FOR=f"192.0.2.{n}")
        assert (
            _login(
                "owner", TEST_PASSWORD, "198.51.100.77", HTTP_X_FORWARDED_FOR="192.0.2.99"
            ).status_code
            == 429
        )


def test_the_audit_log_records_the_forwarded_client(owner, settings):
    from orgs.models import AuditEvent

    settings.TRUSTED_PROXY_IPS = ["10.0.0.0/24"]
    _login("owner", TEST_PASSWORD, PROXY, HTTP_X_FORWARDED_FOR="1.2.3.4, 198.51.100.8, 10.0.0.1")
    assert AuditEvent.objects.get(action="auth.login").ip_address == "198.51.100.8"


@pytest.mark.parametrize(
    ("remote", "header", "client"),
    [
        ("10.0.0.2", "198.51.100.8", "198.51.100.8"),
        ("10.0.0.2", "6.6.6.6, 198.51.100.8", "198.51.100.8"),  # left of the client: typed by it
        ("10.0.0.2", "198.51.100.8, 10.0.0.3", "198.51.100.8"),  # two trusted hops
        ("10.0.0.2", "", "10.0.0.2"),  # the proxy did not say
        ("10.0.0.2", "not-an-ip", "10.0.0.2"),
        ("198.51.100.8", "6.6.6.6", "198.51.100.8"),  # not from a proxy: header ignored
    ],
)
def test_forwarded_client(remote, header, client):
    assert forwarded_client(remote, header, parse_networks(["10.0.0.0/24"], setting="T")) == client


def test_a_bad_trusted_proxy_entry_names_the_setting():
    from django.core.exceptions import ImproperlyConfigured

    with pytest.raises(ImproperlyConfigured, match="TRUSTED_PROXY_IPS: 'proxy.local'"):
        parse_networks(["proxy.local"], setting="TRUSTED_PROXY_IPS")


def test_a_trusted_proxy_that_sends_no_client_address_is_logged(db, settings, caplog):
    settings.TRUSTED_PROXY_IPS = [PROXY]
    with caplog.at_level("WARNING", logger="orgs.lockout"):
        Client().get("/healthz", REMOTE_ADDR=PROXY)
    assert "without X-Forwarded-For" in caplog.text
