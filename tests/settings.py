"""Test settings: the project's settings with a fixed test key ring and fast hashing.

With no environment set the suite runs on in-memory SQLite; CI exports DATABASE_URL
(PostgreSQL) and CELERY_BROKER_URL (Redis) and the same suite runs on them.
"""

import os
import tempfile

# Fixed, obviously fake test keys (32 bytes each); never used outside tests.
TEST_KEY_V1 = "v1:" + "dGVzdC1rZXktb25lLTMyLWJ5dGVzLWxvbmctMTIzNDU="
os.environ["CONSOLE_READ_DOTENV"] = "false"  # a developer's local .env must not leak in
os.environ.setdefault("FIELD_ENCRYPTION_KEYS", TEST_KEY_V1)
os.environ.setdefault("SECRET_KEY", "test-secret-key-not-for-production-" + "0" * 30)
os.environ.setdefault("DEBUG", "false")
os.environ.setdefault("SECURE_SSL_REDIRECT", "false")
os.environ.setdefault(
    "CONSOLE_VAR_DIR", os.path.join(tempfile.gettempdir(), f"console-test-{os.getpid()}")
)
os.environ.setdefault("CACHE_URL", "locmemcache://")

from platformadmin.settings import *  # noqa: E402,F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
MAILERS = {"default": {"BACKEND": "django.core.mail.backends.locmem.EmailBackend"}}
STORAGES["staticfiles"]["BACKEND"] = "django.contrib.staticfiles.storage.StaticFilesStorage"  # noqa: F405
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = True

# A shared cache (Redis in CI) gets a per-run prefix so runs never see each other's keys.
CACHES["default"]["KEY_PREFIX"] = f"test{os.getpid()}"  # noqa: F405
