"""Shared fixtures: one organization with a project, and a user for every role.

owner = organization owner, reader = organization reader, project_owner and member
are project roles, outsider belongs to another organization.
"""

from __future__ import annotations

import pytest

from tests.factories import (
    OrganizationFactory,
    ProjectFactory,
    UserFactory,
    add_org_member,
    add_project_member,
    make_api_key,
)


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
