"""The async client layer: amodels_list through the event loop's AsyncOpenAI, one pool."""

from __future__ import annotations

import pytest
from asgiref.sync import async_to_sync

from keys.services import api_key_reveal_secret
from platformadmin.openai.services import amodels_list
from tests.platformadmin.helpers import sim_key

pytestmark = pytest.mark.django_db


def test_it_lists_the_models_through_one_async_pool(project, openai_simulator):
    keys = [sim_key(project, openai_simulator) for _ in range(3)]
    openai_simulator.reset()

    async def six_calls():
        return [await amodels_list(api_key=keys[i % 3]) for i in range(6)]

    results = async_to_sync(six_calls)()
    assert all(r.ok for r in results), [r.message for r in results]
    assert "gpt-5.4-mini" in results[0].model_ids
    assert len({r.request_id for r in results}) == 6
    assert openai_simulator.requests == 6
    assert openai_simulator.connections == 1  # one loop, one pool, reused across keys
    keys[0].refresh_from_db()
    assert keys[0].last_used_at is not None


def test_it_explains_a_rejected_key_without_the_secret(project, openai_simulator):
    key = sim_key(project, openai_simulator, fault="401")
    secret = api_key_reveal_secret(key)
    result = async_to_sync(amodels_list)(api_key=key)
    assert not result.ok
    assert "401" in result.message and result.request_id in result.message
    assert secret not in result.message


def test_it_refuses_a_revoked_key_without_a_request(project, openai_simulator):
    key = sim_key(project, openai_simulator)
    key.status = "revoked"
    key.save()
    openai_simulator.reset()
    result = async_to_sync(amodels_list)(api_key=key)
    assert not result.ok and "revoked" in result.message
    assert openai_simulator.requests == 0
