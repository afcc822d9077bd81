"""Settings of the Celery worker subprocesses the notification tests start.

The test settings, plus what the test process tells the worker through the environment:
the test database's name (pytest-django made it: ``test_<name>``), the local SMTP
receiver's port (tests.settings sends mail to Django's in-memory outbox otherwise) and a
queue of its own (so messages left by other tests are not consumed).
"""

import os

from tests.settings import *  # noqa: F403

if os.environ.get("NOTIFICATION_TEST_DB_NAME"):
    DATABASES["default"]["NAME"] = os.environ["NOTIFICATION_TEST_DB_NAME"]  # noqa: F405
    DATABASES["default"].get("OPTIONS", {}).pop("pool", None)  # noqa: F405
if os.environ.get("NOTIFICATION_TEST_SMTP_PORT"):
    MAILERS = {
        "default": {
            "BACKEND": "django.core.mail.backends.smtp.EmailBackend",
            "OPTIONS": {
                "host": "127.0.0.1",
                "port": int(os.environ["NOTIFICATION_TEST_SMTP_PORT"]),
                "timeout": 10,
            },
        }
    }
CELERY_TASK_DEFAULT_QUEUE = os.environ.get("NOTIFICATION_TEST_QUEUE", "celery")
