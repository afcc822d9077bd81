"""Two-factor sign-in: encrypted seeds, the code after the password, mandatory for owners."""

from __future__ import annotations

import base64
import datetime as dt

import pytest
import time_machine
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django_otp.oath import TOTP

from orgs.models import AuditEvent, TOTPDevice
from tests.factories import TEST_PASSWORD

pytestmark = pytest.mark.django_db

START = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)


def _code(seed: str, at: dt.datetime | None = None) -> str:
    totp = TOTP(base64.b32decode(seed), step=30, digits=6)
    if at is not None:
        totp.time = at.timestamp()
    return f"{totp.token():06d}"


def _set_up(client, user) -> str:
    client.force_login(user)
    page = client.get(reverse("otp-setup"))
    assert page.status_code == 200
    seed = page.context["seed"]
    response = client.post(reverse("otp-setup"), {"token": _code(seed)})
    assert response.status_code == 302
    return seed


def test_setup_shows_an_inline_qr_and_stores_the_seed_encrypted(client, owner):
    client.force_login(owner)
    page = client.get(reverse("otp-setup"))
    html = page.content.decode()
    seed = page.context["seed"]
    assert "<svg" in html  # rendered inline by segno: no image URL, no third party sees the seed
    assert 'src="http' not in html and "<img" not in html
    assert "no-store" in page["Cache-Control"]
    device = TOTPDevice.objects.get(user=owner)
    assert not device.confirmed
    assert seed not in device.seed and device.seed.startswith("v1:")
    # A wrong first code does not confirm it.
    assert (
        client.post(
            reverse("otp-setup"), {"token": "000000" if _code(seed) != "000000" else "111111"}
        ).status_code
        == 400
    )
    device.refresh_from_db()
    assert not device.confirmed


def test_with_a_device_every_page_asks_for_the_code_after_the_password(client, owner, organization):
    with time_machine.travel(START, tick=False) as traveller:
        seed = _set_up(client, owner)
        assert AuditEvent.objects.filter(action="auth.otp_enabled").exists()
        client.logout()
        assert (
            client.post(
                "/accounts/login/", {"username": "owner", "password": TEST_PASSWORD}
            ).status_code
            == 302
        )
        org_url = reverse("orgs:organization-detail", kwargs={"org_id": organization.public_id})
        gated = client.get(org_url)
        assert gated.status_code == 302 and gated["Location"].startswith(reverse("otp-verify"))
        assert client.get("/admin/").status_code == 302
        wrong = client.post(reverse("otp-verify"), {"token": "12345x", "next": org_url})
        assert wrong.status_code == 400
        assert AuditEvent.objects.filter(action="auth.otp_failed").exists()
        traveller.shift(dt.timedelta(seconds=61))  # past the failure throttle; a fresh step
        ok = client.post(
            reverse("otp-verify"),
            {"token": _code(seed, START + dt.timedelta(seconds=61)), "next": org_url},
        )
        assert ok.status_code == 302 and ok["Location"] == org_url
        assert client.get(org_url).status_code == 200


def test_a_code_is_accepted_only_once(client, owner):
    with time_machine.travel(START, tick=False):
        seed = _set_up(client, owner)  # consumes the code of this time step
        device = TOTPDevice.objects.get(user=owner, confirmed=True)
        assert not device.verify_token(_code(seed, START))


def test_a_next_url_elsewhere_is_ignored(client, owner):
    with time_machine.travel(START, tick=False) as traveller:
        seed = _set_up(client, owner)
        client.logout()
        client.post("/accounts/login/", {"username": "owner", "password": TEST_PASSWORD})
        traveller.shift(dt.timedelta(seconds=30))
        response = client.post(
            reverse("otp-verify"),
            {
                "token": _code(seed, START + dt.timedelta(seconds=30)),
                "next": "https://evil.example/",
            },
        )
        assert response.status_code == 302 and response["Location"] == "/"


def test_owners_must_set_up_two_factor_when_the_setting_is_on(
    client, owner, reader, organization, settings
):
    settings.OTP_REQUIRED_FOR_ORG_OWNERS = True
    org_url = reverse("orgs:organization-detail", kwargs={"org_id": organization.public_id})
    client.force_login(reader)
    assert client.get(org_url).status_code == 200
    client.force_login(owner)
    response = client.get(org_url)
    assert response.status_code == 302 and response["Location"] == reverse("otp-setup")
    _set_up(client, owner)
    assert client.get(org_url).status_code == 200


def test_the_seed_is_not_shown_again_once_confirmed(client, owner):
    seed = _set_up(client, owner)
    page = client.get(reverse("otp-setup"))  # verified session: may replace the device
    assert seed not in page.content.decode()


def test_seeds_move_with_the_key_ring(client, owner):
    """reencrypt_secrets covers TOTP seeds like API keys (same sealed field)."""
    from io import StringIO

    from django.core.management import call_command
    from django.test import override_settings

    from keys.crypto import generate_key
    from orgs.otp import totp_device_start
    from tests.settings import TEST_KEY_V1

    device, seed = totp_device_start(user=owner)
    new_key = generate_key(2)
    with override_settings(FIELD_ENCRYPTION_KEYS=f"{new_key},{TEST_KEY_V1}"):
        call_command("reencrypt_secrets", stdout=StringIO(), stderr=StringIO())
    device.refresh_from_db()
    assert device.seed.startswith("v2:")
    with override_settings(FIELD_ENCRYPTION_KEYS=new_key):
        from orgs.otp import totp_seed_for_setup

        assert totp_seed_for_setup(device) == seed


def test_visiting_the_setup_page_again_shows_the_same_device(client, owner):
    client.force_login(owner)
    first = client.get(reverse("otp-setup")).context["seed"]
    device = TOTPDevice.objects.get(user=owner)
    for _ in range(3):
        assert client.get(reverse("otp-setup")).context["seed"] == first
    assert list(TOTPDevice.objects.filter(user=owner).values_list("public_id", flat=True)) == [
        device.public_id
    ]
    device_row = TOTPDevice.objects.get(pk=device.pk)
    assert device_row.seed == device.seed  # not even re-sealed


def test_a_verified_user_visiting_setup_gets_one_unconfirmed_device_however_often(client, owner):
    _set_up(client, owner)
    for _ in range(3):
        client.get(reverse("otp-setup"))
    assert TOTPDevice.objects.filter(user=owner, confirmed=False).count() == 1
    assert TOTPDevice.objects.filter(user=owner, confirmed=True).count() == 1


def test_new_qr_code_replaces_the_unconfirmed_device_once(client, owner):
    client.force_login(owner)
    old_seed = client.get(reverse("otp-setup")).context["seed"]
    old = TOTPDevice.objects.get(user=owner)
    response = client.post(reverse("otp-setup"), {"restart": "1"})
    assert response.status_code == 302 and response["Location"] == reverse("otp-setup")
    new = TOTPDevice.objects.get(user=owner)
    assert new.pk != old.pk
    page = client.get(reverse("otp-setup"))
    assert page.context["seed"] != old_seed
    assert TOTPDevice.objects.get(user=owner).pk == new.pk
    # The old QR code's codes no longer confirm anything.
    assert client.post(reverse("otp-setup"), {"token": _code(old_seed)}).status_code == 400
    assert not TOTPDevice.objects.get(user=owner).confirmed


def test_a_code_after_the_device_was_replaced_elsewhere_is_a_clear_error(client, owner):
    client.force_login(owner)
    seed = client.get(reverse("otp-setup")).context["seed"]
    TOTPDevice.objects.filter(
        user=owner
    ).delete()  # e.g. set-up restarted in another tab, then removed
    response = client.post(reverse("otp-setup"), {"token": _code(seed)})
    assert response.status_code == 400
    assert "replaced" in response.context["error"]


def _device_queries(client, url: str) -> int:
    with CaptureQueriesContext(connection) as queries:
        assert client.get(url).status_code == 200
    return sum("orgs_totpdevice" in q["sql"] for q in queries.captured_queries)


def test_a_user_without_a_device_is_not_asked_the_database_on_every_request(
    client, member, project
):
    """The gate remembers "no device" in the session: one query, then none."""
    client.force_login(member)
    url = reverse("orgs:project-detail", kwargs={"project_id": project.public_id})
    assert _device_queries(client, url) == 1
    assert _device_queries(client, url) == 0
    assert _device_queries(client, url) == 0


def test_a_device_confirmed_in_another_session_gates_this_one_at_its_next_request(
    client, member, project
):
    url = reverse("orgs:project-detail", kwargs={"project_id": project.public_id})
    client.force_login(member)
    assert client.get(url).status_code == 200  # remembered: no device
    _set_up(Client(), member)  # the same user confirms an authenticator in another browser
    response = client.get(url)
    assert response.status_code == 302 and response["Location"].startswith(reverse("otp-verify"))


def test_a_device_deleted_in_the_admin_lifts_the_gate_of_the_users_sessions(
    client, member, project
):
    url = reverse("orgs:project-detail", kwargs={"project_id": project.public_id})
    _set_up(client, member)
    client.logout()
    client.force_login(member)
    assert client.get(url).status_code == 302  # a code is asked
    TOTPDevice.objects.get(user=member).delete()  # what the admin's delete does
    assert client.get(url).status_code == 200
    assert _device_queries(client, url) == 0  # and "no device" is remembered again
