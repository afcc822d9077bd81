"""orgs.access.get_project_for_user's one written-out query builds the same objects as the ORM.

(The 404/403 rules themselves are covered role by role in tests/test_access_matrix.py.)
"""

from __future__ import annotations

import uuid

import pytest
from django.core.exceptions import PermissionDenied
from django.db.models import Model
from django.http import Http404

from orgs.access import Need, get_project_for_user
from orgs.models import Organization, Project

pytestmark = pytest.mark.django_db


def field_values(obj: Model) -> dict:
    return {f.attname: getattr(obj, f.attname) for f in type(obj)._meta.concrete_fields}


def test_the_project_and_its_organization_equal_what_the_orm_loads(member, project):
    project.allowed_models = ["gpt-5.4-mini", "gpt-4.1"]
    project.max_output_tokens = 2048
    project.save()
    got = get_project_for_user(member, str(project.public_id), need=Need.USE)
    orm = Project.objects.get(pk=project.pk)
    assert field_values(got) == field_values(orm)
    for name, value in field_values(got).items():  # same Python types, not only equal values
        assert type(value) is type(getattr(orm, name)), name
    assert isinstance(got.public_id, uuid.UUID) and got.created_at.tzinfo is not None
    assert Project._meta.get_field("organization").is_cached(got)  # no query on access
    assert field_values(got.organization) == field_values(Organization.objects.get(pk=project.organization_id))
    assert got._state.db == "default" and not got._state.adding


def test_roles_decide_between_404_403_and_the_project(owner, reader, member, outsider, project):
    assert get_project_for_user(owner, project.public_id, need=Need.MANAGE) == project
    assert get_project_for_user(reader, project.public_id) == project
    with pytest.raises(PermissionDenied):
        get_project_for_user(reader, project.public_id, need=Need.USE)
    with pytest.raises(PermissionDenied):
        get_project_for_user(member, project.public_id, need=Need.MANAGE)
    with pytest.raises(Http404):
        get_project_for_user(outsider, project.public_id)
    with pytest.raises(Http404):
        get_project_for_user(owner, uuid.uuid4())
    with pytest.raises(Http404):
        get_project_for_user(owner, "not-a-uuid")
