"""A key's "last used" follows the calls made with it, without a write per call."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from keys.services import api_key_mark_used
from platformadmin.openai.services import models_list
from tests.platformadmin.helpers import sim_key
from usage.services import usage_record_create

pytestmark = pytest.mark.django_db


def test_it_moves_forward_at_most_once_a_minute(api_key):
    now = timezone.now()
    assert api_key_mark_used(api_key=api_key, when=now)
    assert not api_key_mark_used(api_key=api_key, when=now + timedelta(seconds=30))
    assert not api_key_mark_used(api_key=api_key, when=now - timedelta(hours=1))  # never back
    assert api_key_mark_used(api_key=api_key, when=now + timedelta(minutes=2))
    api_key.refresh_from_db()
    assert api_key.last_used_at == now + timedelta(minutes=2)


def test_a_recorded_call_marks_its_key_used(project, api_key):
    assert api_key.last_used_at is None
    record, created = usage_record_create(
        project=project,
        api_key=api_key,
        source="playground",
        model="gpt-5.4-mini",
        response_id="resp_last_used",
        usage={"input_tokens": 10, "output_tokens": 2, "total_tokens": 12},
    )
    api_key.refresh_from_db()
    assert created and api_key.last_used_at == record.occurred_at


def test_a_successful_test_connection_marks_the_key_used(project, openai_simulator):
    key = sim_key(project, openai_simulator)
    assert models_list(api_key=key).ok
    key.refresh_from_db()
    assert key.last_used_at is not None


def test_a_refused_key_is_not_marked_used(project, openai_simulator):
    key = sim_key(project, openai_simulator, fault="401")
    assert not models_list(api_key=key).ok
    key.refresh_from_db()
    assert key.last_used_at is None
