"""Signed-in sessions end after SESSION_IDLE_TIMEOUT without activity and after
SESSION_ABSOLUTE_LIFETIME in any case (orgs/session_timeout.py)."""

from __future__ import annotations

import datetime as dt

import pytest
import time_machine
from django.conf import settings
from django.contrib.messages import get_messages
from django.contrib.sessions.models import Session
from django.urls import reverse

from tests.factories import TEST_PASSWORD

pytestmark = pytest.mark.django_db

START = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)


@pytest.fixture
def page(organization):
    return reverse("orgs:organization-detail", kwargs={"org_id": organization.public_id})


def _sign_in(client):
    response = client.post("/accounts/login/", {"username": "owner", "password": TEST_PASSWORD})
    assert response.status_code == 302


def test_the_defaults_are_a_working_day_and_a_week():
    assert settings.SESSION_IDLE_TIMEOUT == 8 * 3600
    assert settings.SESSION_ABSOLUTE_LIFETIME == settings.SESSION_COOKIE_AGE == 7 * 24 * 3600


def test_an_idle_session_is_signed_out_with_a_message(client, owner, page):
    idle = dt.timedelta(seconds=settings.SESSION_IDLE_TIMEOUT)
    with time_machine.travel(START, tick=False) as traveller:
        _sign_in(client)
        assert client.get(page).status_code == 200
        traveller.shift(idle - dt.timedelta(seconds=5))
        assert client.get(page).status_code == 200  # activity: the idle clock restarts
        traveller.shift(idle - dt.timedelta(seconds=5))
        assert client.get(page).status_code == 200
        traveller.shift(idle + dt.timedelta(seconds=1))
        response = client.get(page)
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("login") + "?next=")
        assert "_auth_user_id" not in client.session
        login_page = client.get(response["Location"])
        shown = [str(m) for m in get_messages(login_page.wsgi_request)]
        assert any("8 hours without activity" in m for m in shown)
        assert "8 hours without activity" in login_page.content.decode()
        # Signed out for good: the next page asks for the password too.
        assert client.get(page).status_code == 302


def test_an_active_session_still_ends_at_the_absolute_lifetime(client, owner, page):
    lifetime = dt.timedelta(seconds=settings.SESSION_ABSOLUTE_LIFETIME)
    with time_machine.travel(START, tick=False) as traveller:
        _sign_in(client)
        client.get(page)
        while dt.datetime.now(dt.UTC) < START + lifetime - dt.timedelta(hours=1):
            traveller.shift(dt.timedelta(hours=7))
            assert client.get(page).status_code == 200
        traveller.shift(dt.timedelta(hours=2))
        response = client.get(page)
        assert response.status_code == 302 and "_auth_user_id" not in client.session


def test_activity_is_written_at_most_once_a_minute(client, owner):
    page = reverse("home")  # a page that itself writes nothing to the session
    with time_machine.travel(START, tick=False) as traveller:
        _sign_in(client)
        client.get(page)
        key = client.session.session_key
        saved = Session.objects.get(session_key=key).expire_date
        traveller.shift(dt.timedelta(seconds=30))
        client.get(page)
        assert Session.objects.get(session_key=key).expire_date == saved  # no session write
        traveller.shift(dt.timedelta(seconds=31))
        client.get(page)
        assert Session.objects.get(session_key=key).expire_date > saved


def test_an_htmx_request_is_sent_to_the_sign_in_page_as_a_whole_page(client, owner, page):
    with time_machine.travel(START, tick=False) as traveller:
        _sign_in(client)
        client.get(page)
        traveller.shift(dt.timedelta(seconds=settings.SESSION_IDLE_TIMEOUT + 1))
        response = client.get(page, HTTP_HX_REQUEST="true")
        assert response["HX-Redirect"].startswith(reverse("login"))


def test_the_timeouts_are_configurable(client, owner, page, settings):
    settings.SESSION_IDLE_TIMEOUT = 600
    with time_machine.travel(START, tick=False) as traveller:
        _sign_in(client)
        client.get(page)
        traveller.shift(dt.timedelta(seconds=601))
        assert client.get(page).status_code == 302
