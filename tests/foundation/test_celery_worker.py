"""A real task through a real worker: Redis in CI, the embedded filesystem transport otherwise."""

from __future__ import annotations

import time

import pytest
from celery.contrib.testing.worker import start_worker
from django.test import override_settings

from keys.crypto import KeyRing, generate_key
from keys.models import APIKey
from keys.services import api_key_reveal_secret
from keys.tasks import secrets_reencrypt
from platformadmin.celery import app
from tests.factories import ProjectFactory, fake_secret, make_api_key
from tests.settings import TEST_KEY_V1


@pytest.mark.django_db(transaction=True)
def test_a_task_sent_to_a_real_worker_takes_effect():
    project = ProjectFactory()
    stored = {make_api_key(project, secret=s).pk: s for s in (fake_secret(), fake_secret())}
    with override_settings(FIELD_ENCRYPTION_KEYS=f"{generate_key(2)},{TEST_KEY_V1}"):
        with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=10):
            secrets_reencrypt.delay(batch_size=1)
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                versions = {KeyRing.version_of(s) for s in APIKey.objects.values_list("secret", flat=True)}
                if versions == {2}:
                    break
                time.sleep(0.2)
        assert versions == {2}, f"the worker did not re-encrypt: versions {versions}"
        for api_key in APIKey.objects.all():
            assert api_key_reveal_secret(api_key) == stored[api_key.pk]


def test_the_app_uses_json_and_the_configured_broker(settings):
    assert app.conf.task_serializer == "json"
    assert app.conf.accept_content == ["json"]
    assert app.conf.broker_url == settings.CELERY_BROKER_URL
    assert "keys.secrets_reencrypt" in app.tasks
