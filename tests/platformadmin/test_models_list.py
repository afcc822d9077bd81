"""platformadmin.openai.services.models_list: the "Test connection" button, against the simulator."""

from __future__ import annotations

import pytest

from platformadmin.openai.services import models_list
from tests.platformadmin.helpers import sim_key

pytestmark = pytest.mark.django_db


def test_it_lists_the_models(project, openai_simulator):
    result = models_list(api_key=sim_key(project, openai_simulator))
    assert result.ok
    assert "gpt-5.4-mini" in result.model_ids
    assert result.request_id.startswith("req_")
    assert result.request_id in result.message


def test_it_explains_a_rejected_key_without_the_secret(project, openai_simulator):
    key = sim_key(project, openai_simulator, fault="401")
    from keys.services import api_key_secret_for_call

    secret = api_key_secret_for_call(key)
    result = models_list(api_key=key)
    assert not result.ok
    assert result.model_ids == []
    assert "401" in result.message and "rotate it" in result.message
    assert result.request_id and result.request_id in result.message
    assert secret not in result.message


def test_it_refuses_a_revoked_key_without_a_request(project, openai_simulator):
    key = sim_key(project, openai_simulator)
    key.status = "revoked"
    key.save()
    result = models_list(api_key=key)
    assert not result.ok and "revoked" in result.message
    assert openai_simulator.requests == 0


def test_it_explains_an_unreachable_base_url(project):
    key = sim_key(project, None, base_url="http://127.0.0.1:9/v1")
    result = models_list(api_key=key)
    assert not result.ok
    assert "Could not reach http://127.0.0.1:9/v1" in result.message
    assert result.request_id is None


def test_it_sends_a_client_request_id_and_the_org_and_project_headers(project, openai_simulator):
    project.organization.openai_org_id = "org-abc"
    project.organization.save()
    project.openai_project_id = "proj_abc"
    project.save()
    models_list(api_key=sim_key(project, openai_simulator))
    entry = openai_simulator.log[-1]
    assert entry["client_request_id"]
    assert entry["organization"] == "org-abc"
    assert entry["project"] == "proj_abc"
