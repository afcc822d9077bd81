"""A key known only from OpenAI's listing ("known, secret not stored"): never callable, and
pasting its value (the rotate page's service) makes it a stored key."""

from __future__ import annotations

import pytest

from keys.selectors import usable_keys
from keys.services import (
    SecretUnavailable,
    api_key_import_upstream,
    api_key_replace_secret,
    api_key_secret_for_call,
)
from tests.factories import fake_secret

pytestmark = pytest.mark.django_db


def _imported(project):
    return api_key_import_upstream(
        organization=project.organization,
        project=project,
        name="made in OpenAI's dashboard",
        openai_key_id="key_abc123",
        redacted_value="sk-proj-****wxyz",
        kind="project",
    )


def test_a_key_known_only_upstream_is_never_callable(project):
    api_key = _imported(project)
    assert api_key.secret == "" and not api_key.secret_stored
    assert api_key not in usable_keys(project=project)
    with pytest.raises(SecretUnavailable, match="Paste its value"):
        api_key_secret_for_call(api_key)


def test_pasting_its_value_stores_it_and_makes_it_callable(project):
    api_key = _imported(project)
    secret = fake_secret("proj")
    api_key_replace_secret(api_key=api_key, secret=secret)
    api_key.refresh_from_db()
    assert api_key.secret_stored and api_key.secret.startswith("v1:")
    assert api_key_secret_for_call(api_key) == secret
    assert api_key in usable_keys(project=project)
