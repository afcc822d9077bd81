"""A real task through a real worker: Redis in CI, the embedded filesystem transport otherwise."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from celery.contrib.testing.worker import start_worker
from django.test import override_settings

from keys.crypto import KeyRing, generate_key
from keys.models import APIKey
from keys.services import api_key_secret_for_call
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
                versions = {
                    KeyRing.version_of(s) for s in APIKey.objects.values_list("secret", flat=True)
                }
                if versions == {2}:
                    break
                time.sleep(0.2)
        assert versions == {2}, f"the worker did not re-encrypt: versions {versions}"
        for api_key in APIKey.objects.all():
            assert api_key_secret_for_call(api_key) == stored[api_key.pk]


def test_the_app_uses_json_and_the_configured_broker(settings):
    assert app.conf.task_serializer == "json"
    assert app.conf.accept_content == ["json"]
    assert app.conf.broker_url == settings.CELERY_BROKER_URL
    assert "keys.secrets_reencrypt" in app.tasks


_SEND_A_TASK = """
import json, logging
import django
django.setup()

class Keep(logging.Handler):
    records = []
    def emit(self, record):
        Keep.records.append(f"{record.levelname} {record.name}: {record.getMessage()} {record.exc_text or ''}")

logging.getLogger().addHandler(Keep(level=logging.ERROR))
from keys.tasks import secrets_reencrypt
secrets_reencrypt.delay(batch_size=1)
print(json.dumps(Keep.records))
"""


def test_sending_a_task_from_a_django_process_logs_no_error(tmp_path):
    """The app is configured once per process, so a fresh one (a shell) sends the task.

    Before the fix, the on_configure handler read ``sender.conf`` while the configuration
    was loading: a RecursionError logged by celery.utils.dispatch.signal on the first send,
    and the filesystem queue folders were never made.
    """
    root = Path(__file__).resolve().parents[2]
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "PYTHONPATH": str(root),
        "CONSOLE_VAR_DIR": str(tmp_path),
        "CELERY_BROKER_URL": "filesystem://",
    }
    done = subprocess.run(
        [sys.executable, "-c", _SEND_A_TASK],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    errors = json.loads(done.stdout.strip().splitlines()[-1])
    assert errors == [], errors
    assert "RecursionError" not in done.stderr
    queue = tmp_path / "celery" / "queue"
    assert queue.is_dir(), "the filesystem transport's folders were not made"
    assert len(list(queue.iterdir())) == 1, "the task message was not written to the queue"
