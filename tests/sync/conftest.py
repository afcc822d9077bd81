"""An organization linked to a simulated OpenAI organization: its admin key stored in the
console, an upstream project linked by id, and an upstream key stored as the project's key."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

import pytest

from keys.services import api_key_create_unaudited
from tests.factories import make_api_key


@dataclass
class Linked:
    organization: object
    project: object
    upstream: object  # the simulator's UpstreamOrg
    upstream_project: dict
    upstream_key: dict
    api_key: object
    admin_key: object
    simulator: object


@pytest.fixture
def linked(openai_simulator, organization, project):
    admin_secret = f"sk-admin-{secrets.token_urlsafe(24)}"
    upstream = openai_simulator.admin.org(admin_secret)
    upstream_project = upstream.add_project(project.name)
    project.openai_project_id = upstream_project["id"]
    project.save(update_fields=["openai_project_id"])
    upstream_key = upstream.add_key(upstream_project["id"], name="app key")
    api_key = make_api_key(
        project, secret=upstream_key["value"], base_url=openai_simulator.base_url
    )
    admin_key = api_key_create_unaudited(
        organization=organization,
        name="admin",
        secret=admin_secret,
        kind="admin",
        base_url=openai_simulator.base_url,
    )
    return Linked(
        organization,
        project,
        upstream,
        upstream_project,
        upstream_key,
        api_key,
        admin_key,
        openai_simulator,
    )
