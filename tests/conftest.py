"""Shared fixtures: one organization with a project, and a user for every role.

owner = organization owner, reader = organization reader, project_owner and member
are project roles, outsider belongs to another organization.
"""

from __future__ import annotations

import importlib

import pytest
from django.apps import apps

from platformadmin.openai.simulator import OpenAISimulator
from tests.factories import (
    OrganizationFactory,
    ProjectFactory,
    UserFactory,
    add_org_member,
    add_project_member,
    make_api_key,
)
from usage.models import CatalogModel


@pytest.fixture
def organization(db):
    return OrganizationFactory(name="Acme", slug="acme")


@pytest.fixture
def project(organization):
    return ProjectFactory(organization=organization, name="Production", environment="production")


@pytest.fixture
def api_key(project):
    return make_api_key(project)


@pytest.fixture
def owner(organization):
    user = UserFactory(username="owner")
    add_org_member(user, organization, "owner")
    return user


@pytest.fixture
def reader(organization):
    user = UserFactory(username="reader")
    add_org_member(user, organization, "reader")
    return user


@pytest.fixture
def project_owner(project):
    user = UserFactory(username="projowner")
    add_project_member(user, project, "owner")
    return user


@pytest.fixture
def member(project):
    user = UserFactory(username="member")
    add_project_member(user, project, "member")
    return user


@pytest.fixture
def other_organization(db):
    return OrganizationFactory(name="Other Inc", slug="other")


@pytest.fixture
def outsider(other_organization):
    user = UserFactory(username="outsider")
    add_org_member(user, other_organization, "owner")
    return user


# --- OpenAI simulator (platformadmin/openai/simulator.py) ------------------------------------
@pytest.fixture(scope="session")
def _openai_simulator_server():
    sim = OpenAISimulator(
        "127.0.0.1", 0, delta_delay=0.005, slow_seconds=1.5, retry_after_ms=10
    ).start()
    yield sim
    sim.stop()


@pytest.fixture
def openai_simulator(_openai_simulator_server, settings):
    """The simulator on a free loopback port, counters reset for this test.

    ``.base_url`` is ``http://127.0.0.1:<port>/v1``; ``.connections``, ``.requests``,
    ``.retry_counts`` and ``.log`` count what it saw; ``.reset()`` zeroes them. Faults are
    chosen by a ``fault-…`` token in the key or model (docs/playground.md), or for every
    request with ``.force_faults = {"500"}`` (an outage; cleared after the test).
    """
    sim = _openai_simulator_server
    # Outgoing requests go only to public addresses (platformadmin/netguard.py): the
    # simulator's own origin, exactly, is allowed for this test (restored afterwards).
    settings.OUTBOUND_ALLOWED_ORIGINS = [sim.root_url]
    defaults = (sim.delta_delay, sim.slow_seconds, sim.retry_after_ms)
    sim.reset()
    yield sim
    sim.delta_delay, sim.slow_seconds, sim.retry_after_ms = defaults
    sim.force_faults = set()
    sim.reset()


def ensure_catalog() -> None:
    """Re-seed the model catalog if a transactional test's flush emptied it.

    The catalog comes from a data migration; ``transaction=True`` tests flush every table
    when they end, so the tests after them would otherwise find no models.
    """
    if not CatalogModel.objects.exists():
        importlib.import_module("usage.migrations.0002_seed_catalog").seed(apps, None)


@pytest.fixture(autouse=True)
def _seeded_catalog(request):
    """Every database test sees the seeded catalog, whatever ran before it."""
    marker = request.node.get_closest_marker("django_db")
    if marker is None:
        return
    request.getfixturevalue("transactional_db" if marker.kwargs.get("transaction") else "db")
    ensure_catalog()
