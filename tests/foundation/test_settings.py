"""Production settings: `check --deploy` is clean, and secrets are required."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

from keys.crypto import generate_key

ROOT = Path(__file__).resolve().parents[2]


def _manage(*args, **env_overrides):
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("FIELD_ENCRYPTION", "DJANGO_", "SECRET_KEY", "DEBUG", "SECURE_"))
    }
    env.update(
        DJANGO_SETTINGS_MODULE="platformadmin.settings",
        CONSOLE_READ_DOTENV="false",
        DATABASE_URL="sqlite://:memory:",
        CONSOLE_VAR_DIR=str(ROOT / "var" / "test-deploy"),
    )
    env.update(env_overrides)
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


PRODUCTION = {
    "DEBUG": "false",
    "SECRET_KEY": secrets.token_urlsafe(50),
    "ALLOWED_HOSTS": "console.example.com",
    "FIELD_ENCRYPTION_KEYS": generate_key(1),
    "EMAIL_URL": "smtp+tls://mailer:pw@smtp.example.com:587",
}


def test_check_deploy_reports_zero_warnings_with_production_values():
    result = _manage("check", "--deploy", "--fail-level", "WARNING", **PRODUCTION)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues (0 silenced)." in result.stdout


def test_secret_key_is_required_when_debug_is_off():
    env = dict(PRODUCTION)
    env.pop("SECRET_KEY")
    result = _manage("check", **env)
    assert result.returncode != 0
    assert "SECRET_KEY is required when DEBUG is off" in result.stderr


def test_debug_runs_without_a_secret_key():
    result = _manage("check", DEBUG="true", FIELD_ENCRYPTION_KEYS=generate_key(1))
    assert result.returncode == 0, result.stderr


def _settings_value(expression: str, **env) -> str:
    result = _manage("shell", "-c", f"from django.conf import settings; print({expression})", **env)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().splitlines()[-1]


def test_postgresql_connections_come_from_a_pool():
    env = dict(PRODUCTION, DATABASE_URL="postgres://console@db.example.com:5432/console")
    assert (
        _settings_value("settings.DATABASES['default']['OPTIONS']['pool']['max_size']", **env)
        == "20"
    )
    assert _settings_value("settings.DATABASES['default']['CONN_MAX_AGE']", **env) == "0"
    off = dict(env, DB_POOL="false", DB_CONN_MAX_AGE="120")
    assert (
        _settings_value("'pool' in settings.DATABASES['default'].get('OPTIONS', {})", **off)
        == "False"
    )
    assert _settings_value("settings.DATABASES['default']['CONN_MAX_AGE']", **off) == "120"
