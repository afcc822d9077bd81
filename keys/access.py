"""Which keys a user may see and do what with: the project rules of orgs.access, plus
admin keys (no project), which organization members read and owners manage.

Lives in keys (not orgs) because it reads keys' table; the role table itself is
orgs.access.ROLE_GRANTS, so the rules are written once.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Q, QuerySet
from django.http import Http404

from orgs.access import (
    Need,
    grants,
    parse_public_id,
    projects_for_user,
    refuse_unless,
    with_viewer_roles,
)
from orgs.models import OrganizationMembership

from .models import APIKey


def api_keys_for_user(user, need: Need = Need.READ) -> QuerySet[APIKey]:
    """Keys the user may see (project keys via projects; admin keys to org members)."""
    if not user.is_authenticated:
        return APIKey.objects.none()
    projects = projects_for_user(user, need).values("pk")
    admin_roles = ROLE_GRANTS_ADMIN_KEYS[need]
    admin_orgs = OrganizationMembership.objects.filter(user=user, role__in=admin_roles).values(
        "organization"
    )
    return APIKey.objects.filter(
        Q(project__in=projects) | Q(project__isnull=True, organization__in=admin_orgs)
    ).select_related("organization", "project")


# Admin keys belong to no project: any organization role reads them, owners do the rest.
ROLE_GRANTS_ADMIN_KEYS: dict[Need, frozenset[str]] = {
    Need.READ: frozenset({OrganizationMembership.Role.OWNER, OrganizationMembership.Role.READER}),
    Need.USE: frozenset({OrganizationMembership.Role.OWNER}),
    Need.MANAGE: frozenset({OrganizationMembership.Role.OWNER}),
}


@dataclass(frozen=True)
class APIKeyAccess:
    """A key the user can read, with the user's two roles, so a page asks ``can``."""

    api_key: APIKey
    org_role: str | None
    project_role: str | None

    def can(self, need: Need) -> bool:
        if self.api_key.project_id is None:
            return self.org_role in ROLE_GRANTS_ADMIN_KEYS[need]
        return grants(self.org_role, self.project_role, need)


def api_key_access_for_user(user, public_id, *, need: Need = Need.READ) -> APIKeyAccess:
    """The key (organization and project loaded) and the user's roles in one query;
    404 if the user cannot read it, 403 if the roles lack ``need``."""
    pid = parse_public_id(public_id)
    if not user.is_authenticated:
        raise Http404("Not found")
    found = with_viewer_roles(
        APIKey.objects.filter(public_id=pid).select_related("organization", "project"),
        user,
        prefix="project__",
        organization="organization",
    ).first()
    if found is None:
        raise Http404("Not found")
    access = APIKeyAccess(
        api_key=found, org_role=found.viewer_org_role, project_role=found.viewer_project_role
    )
    return refuse_unless(access, need, "key")


def get_api_key_for_user(user, public_id, *, need: Need = Need.READ) -> APIKey:
    """The key alone (for views that need no role beyond ``need``)."""
    return api_key_access_for_user(user, public_id, need=need).api_key
