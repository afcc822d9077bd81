"""Queries per page do not grow with the number of keys, members or usage records.

Each page is loaded by an organization owner at two sizes of the same project (1 key,
member and usage record, then 20 of each); the count must be the same and equal to the
recorded figure, so an N+1 (a query per key, per member, per record) or a second role
lookup after the access check fails here. Before issue 10 (1 / 20 keys, owner and
member): project page 20 / 39 and 19 / 38 (a query per key for ``key.project``, and the
roles asked again after the access check), organization page 16 / 16 and 13 / 13, key
page 7 / 7, playground 7 / 7.
"""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from orgs.models import OrganizationMembership, ProjectMembership
from tests.factories import UserFactory, add_org_member, add_project_member, make_api_key
from tests.usage.conftest import response_json
from usage.services import usage_record_create

pytestmark = pytest.mark.django_db


def _grow(project, n: int) -> list:
    """n keys, n project members, n organization readers and n usage records."""
    keys = [make_api_key(project, name=f"key {i:02}") for i in range(n)]
    for i in range(n):
        add_project_member(UserFactory(), project, ProjectMembership.Role.MEMBER)
        add_org_member(UserFactory(), project.organization, OrganizationMembership.Role.READER)
        usage_record_create(
            project=project, api_key=keys[i], source="ingest", response=response_json(f"resp_{i}")
        )
    return keys


def _url(page: str, project, key) -> str:
    if page == "project":
        return reverse("orgs:project-detail", kwargs={"project_id": project.public_id})
    if page == "organization":
        return reverse(
            "orgs:organization-detail", kwargs={"org_id": project.organization.public_id}
        )
    if page == "key":
        return reverse("keys:key-detail", kwargs={"key_id": key.public_id})
    return reverse("playground:index") + f"?project={project.public_id}"


def _count(client, url: str) -> int:
    client.get(url)  # warm: session, content types and other per-process caches
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
    assert response.status_code == 200, url
    return len(queries)


PAGES = ["project", "organization", "key", "playground"]


@pytest.mark.parametrize("who", ["owner", "member"])
@pytest.mark.parametrize("page", PAGES)
def test_queries_do_not_grow_with_keys_members_and_records(client, request, project, page, who):
    client.force_login(request.getfixturevalue(who))
    keys = _grow(project, 1)
    small = _count(client, _url(page, project, keys[0]))
    keys += _grow(project, 19)
    large = _count(client, _url(page, project, keys[0]))
    assert (small, large) == EXPECTED[page, who]


EXPECTED: dict[tuple[str, str], tuple[int, int]] = {
    # + 1 since budgets: the checklist's budget row asks for the project's budgets.
    # - 3 since the organization switcher saves the session only when the organization
    # changed (it was savepoint, update, release on every view of these pages).
    ("project", "owner"): (13, 13),
    ("project", "member"): (12, 12),
    # Since daily rollups in the billing timezone the month's spend asks for the zone they
    # are cut in, and reads whole local days (no raw edge): the same count as before.
    ("organization", "owner"): (11, 11),
    ("organization", "member"): (8, 8),
    ("key", "owner"): (5, 5),
    ("key", "member"): (5, 5),
    # + 1 since the hard limit: the playground asks for the project's hard-limit budgets.
    ("playground", "owner"): (8, 8),
    ("playground", "member"): (8, 8),
}
