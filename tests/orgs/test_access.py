"""orgs.access: the project access object, its roles and the one role table."""

from __future__ import annotations

import uuid

import pytest
from django.core.exceptions import PermissionDenied
from django.http import Http404

from orgs.access import (
    ROLE_GRANTS,
    Need,
    get_project_for_user,
    project_access_for_user,
    projects_for_user,
)
from orgs.models import Organization, Project

pytestmark = pytest.mark.django_db


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


def test_the_access_object_carries_both_roles_and_the_loaded_organization(
    member, owner, project, django_assert_num_queries
):
    with django_assert_num_queries(1):  # project, organization and both roles at once
        access = project_access_for_user(member, project.public_id, need=Need.USE)
        assert isinstance(access.project.organization, Organization)
    assert (access.org_role, access.project_role) == (None, "member")
    assert access.can(Need.READ) and access.can(Need.USE) and not access.can(Need.MANAGE)
    owner_access = project_access_for_user(owner, project.public_id)
    assert owner_access.is_org_owner and owner_access.can(Need.MANAGE)


@pytest.mark.parametrize("need", list(Need))
def test_the_filter_and_can_agree_role_by_role(
    need, owner, reader, project_owner, member, outsider, project
):
    """Both are read from ROLE_GRANTS: whoever the queryset lists, ``can`` allows."""
    assert set(ROLE_GRANTS) == set(Need)
    for user in (owner, reader, project_owner, member, outsider):
        listed = projects_for_user(user, need).filter(pk=project.pk).exists()
        try:
            allowed = project_access_for_user(user, project.public_id).can(need)
        except Http404:
            allowed = False
        assert listed == allowed, (user, need)
    assert Project.objects.count() >= 1
