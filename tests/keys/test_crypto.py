"""The key ring and AES-256-GCM sealing: format, binding to the row, startup errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.db import connection

from keys.crypto import DecryptionError, KeyRing, KeyRingError, generate_key
from keys.fields import unseal
from keys.models import APIKey
from keys.services import SecretUnavailable, api_key_secret_for_call
from tests.factories import fake_secret, make_api_key

ROOT = Path(__file__).resolve().parents[2]


def test_it_round_trips_and_prefixes_the_version():
    ring = KeyRing.parse(f"{generate_key(3)},{generate_key(2)}")
    token = ring.encrypt("hello", aad="a")
    assert token.startswith("v3:")
    assert ring.decrypt(token, aad="a") == "hello"
    assert "hello" not in token


def test_it_refuses_other_associated_data():
    ring = KeyRing.parse(generate_key(1))
    token = ring.encrypt("hello", aad="row-1")
    with pytest.raises(DecryptionError, match="another row"):
        ring.decrypt(token, aad="row-2")


def test_it_refuses_a_tampered_ciphertext():
    ring = KeyRing.parse(generate_key(1))
    token = ring.encrypt("hello", aad="row-1")
    body = bytearray(token[3:].encode())
    body[20] = ord("A") if body[20] != ord("A") else ord("B")
    with pytest.raises(DecryptionError):
        ring.decrypt("v1:" + body.decode(), aad="row-1")


def test_it_names_a_missing_version():
    old = KeyRing.parse(generate_key(1))
    new = KeyRing.parse(generate_key(2))
    with pytest.raises(DecryptionError, match="v1"):
        new.decrypt(old.encrypt("x", aad="a"), aad="a")


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("", "FIELD_ENCRYPTION_KEYS is not set"),
        ("nonsense", "entry #1 is malformed"),
        ("v1:c2hvcnQ=", "not a base64 32-byte key"),
        (f"{generate_key(1)},{generate_key(2)}", "newest (highest) version first"),
    ],
)
def test_a_bad_ring_explains_the_fix(value, message):
    with pytest.raises(KeyRingError) as exc:
        KeyRing.parse(value)
    assert message in str(exc.value)
    assert "generate_encryption_key" in str(exc.value)


def test_repr_of_the_ring_shows_no_key():
    entry = generate_key(1)
    assert entry.split(":", 1)[1] not in repr(KeyRing.parse(entry))


@pytest.mark.django_db
def test_raw_sql_read_of_the_key_table_holds_no_plaintext(project):
    secret = fake_secret()
    api_key = make_api_key(project, secret=secret)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT * FROM {APIKey._meta.db_table}")
        rows = cursor.fetchall()
    dump = repr(rows)
    assert rows, "the key should be stored"
    assert secret not in dump
    assert secret[8:] not in dump  # not even the body without its prefix
    assert api_key.secret.startswith("v1:")
    assert api_key_secret_for_call(api_key) == secret


@pytest.mark.django_db
def test_a_ciphertext_copied_onto_another_row_fails(project):
    first = make_api_key(project)
    second = make_api_key(project)
    APIKey.objects.filter(pk=second.pk).update(secret=first.secret)
    second.refresh_from_db()
    with pytest.raises(DecryptionError):
        unseal(second, "secret")
    with pytest.raises(SecretUnavailable, match="cannot be decrypted"):
        api_key_secret_for_call(second)


@pytest.mark.django_db
def test_repr_and_str_never_show_the_secret(project):
    secret = fake_secret()
    api_key = make_api_key(project, secret=secret)
    assert secret not in repr(api_key)
    assert secret not in str(api_key)
    assert api_key.hint.endswith(secret[-4:])
    assert api_key.hint.startswith("sk-proj-…")


def _manage(*args, env_overrides):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FIELD_ENCRYPTION", "DJANGO_"))}
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "platformadmin.settings",
            "CONSOLE_READ_DOTENV": "false",
            "DEBUG": "true",
            "DATABASE_URL": "sqlite://:memory:",
        }
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


def test_startup_stops_with_a_clear_message_when_the_ring_is_missing():
    result = _manage("check", env_overrides={"FIELD_ENCRYPTION_KEYS": ""})
    assert result.returncode != 0
    assert "FIELD_ENCRYPTION_KEYS is not set" in result.stderr
    assert "generate_encryption_key" in result.stderr


def test_startup_stops_with_a_clear_message_when_the_ring_is_malformed():
    result = _manage("check", env_overrides={"FIELD_ENCRYPTION_KEYS": "v1:not-a-key"})
    assert result.returncode != 0
    assert "not a base64 32-byte key" in result.stderr


def test_generate_encryption_key_prints_the_next_version():
    current = generate_key(4)
    result = _manage("generate_encryption_key", env_overrides={"FIELD_ENCRYPTION_KEYS": current})
    assert result.returncode == 0, result.stderr
    printed = result.stdout.strip()
    assert printed.startswith("v5:")
    ring = KeyRing.parse(f"{printed},{current}")
    assert ring.newest == 5


def test_generate_encryption_key_works_without_a_ring():
    result = _manage("generate_encryption_key", env_overrides={"FIELD_ENCRYPTION_KEYS": ""})
    assert result.returncode == 0, result.stderr
    assert KeyRing.parse(result.stdout.strip()).newest == 1
