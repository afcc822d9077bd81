"""reencrypt_secrets: moves every secret to the newest key, resumably, and reports."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.test import override_settings

from keys.crypto import KeyRing, generate_key
from keys.models import APIKey
from keys.services import api_key_secret_for_call
from tests.factories import fake_secret, make_api_key
from tests.settings import TEST_KEY_V1

pytestmark = pytest.mark.django_db

NEW_KEY = generate_key(2)


def _run(**options) -> str:
    out = StringIO()
    call_command("reencrypt_secrets", stdout=out, stderr=out, **options)
    return out.getvalue()


@pytest.fixture
def stored(project):
    secrets_by_pk = {}
    for _ in range(5):
        secret = fake_secret()
        secrets_by_pk[make_api_key(project, secret=secret).pk] = secret
    return secrets_by_pk


def test_it_moves_every_secret_to_the_new_key(stored):
    with override_settings(FIELD_ENCRYPTION_KEYS=f"{NEW_KEY},{TEST_KEY_V1}"):
        output = _run(batch_size=2)
        assert "0 secret(s) remain on older keys" in output
        assert all(k.secret.startswith("v2:") for k in APIKey.objects.all())
    # The old key can now be dropped: every secret still decrypts with v2 alone.
    with override_settings(FIELD_ENCRYPTION_KEYS=NEW_KEY):
        for api_key in APIKey.objects.all():
            assert api_key_secret_for_call(api_key) == stored[api_key.pk]


def test_an_interrupted_run_resumes_and_finishes(stored):
    with override_settings(FIELD_ENCRYPTION_KEYS=f"{NEW_KEY},{TEST_KEY_V1}"):
        first = _run(batch_size=2, max_batches=1)
        assert "Re-encrypted 2 secret(s)" in first
        assert "3 secret(s) remain on older keys" in first
        versions = sorted(KeyRing.version_of(k.secret) for k in APIKey.objects.all())
        assert versions == [1, 1, 1, 2, 2]

        second = _run(batch_size=2)
        assert "Re-encrypted 3 secret(s)" in second
        assert "0 secret(s) remain on older keys" in second
        for api_key in APIKey.objects.all():
            assert api_key_secret_for_call(api_key) == stored[api_key.pk]


def test_it_shows_progress(stored):
    with override_settings(FIELD_ENCRYPTION_KEYS=f"{NEW_KEY},{TEST_KEY_V1}"):
        output = _run(batch_size=2)
    assert "keys.apikey.secret: 2/5 re-encrypted" in output
    assert "keys.apikey.secret: 5/5 re-encrypted" in output


def test_a_damaged_secret_is_reported_and_left_alone(stored, project):
    broken = make_api_key(project)
    other = APIKey.objects.exclude(pk=broken.pk).first()
    APIKey.objects.filter(pk=broken.pk).update(secret=other.secret)  # bound to another row
    with override_settings(FIELD_ENCRYPTION_KEYS=f"{NEW_KEY},{TEST_KEY_V1}"):
        with pytest.raises(CommandError, match="1 secret"):
            _run(batch_size=10)
        broken.refresh_from_db()
        assert broken.secret.startswith("v1:")
        assert APIKey.objects.filter(secret__startswith="v2:").count() == 5


def test_a_second_run_with_nothing_to_do_changes_nothing(stored):
    with override_settings(FIELD_ENCRYPTION_KEYS=f"{NEW_KEY},{TEST_KEY_V1}"):
        _run()
        before = dict(APIKey.objects.values_list("pk", "secret"))
        output = _run()
        assert "Re-encrypted 0 secret(s)" in output
        assert dict(APIKey.objects.values_list("pk", "secret")) == before
