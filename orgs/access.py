"""Who may see and do what: one helper per object type, used by every view and form.

Rules (mirroring OpenAI's roles):
- organization owner: everything in the organization;
- organization reader: read everything in the organization, change nothing;
- project owner: manage the project (keys, service accounts, members, settings);
- project member: use the project (playground) and read it.

An outsider gets 404 (the object's existence is not disclosed); a user who can see
the object but lacks the needed role gets 403.
"""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass
from typing import Protocol

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.db.models import Exists, OuterRef, Q, QuerySet, Subquery
from django.http import Http404

from .models import Organization, OrganizationMembership, Project, ProjectMembership


class Need(enum.StrEnum):
    """What an action needs on a project."""

    READ = "read"  # see it
    USE = "use"  # call models with its keys (playground)
    MANAGE = "manage"  # change it


def parse_public_id(value) -> uuid.UUID:
    """A public id from a URL or form; anything else is a 404 (not a 500)."""
    if isinstance(value, uuid.UUID):
        return value
    try:
        return uuid.UUID(str(value))
    except (TypeError, ValueError, AttributeError) as exc:
        raise Http404("Not found") from exc


def organizations_for_user(user) -> QuerySet[Organization]:
    """Organizations the user can see at all (member of it, or of one of its projects)."""
    if not user.is_authenticated:
        return Organization.objects.none()
    return Organization.objects.filter(
        Q(memberships__user=user) | Q(projects__memberships__user=user)
    ).distinct()


def can_create_organization(user) -> bool:
    """Superusers may always create an organization (the first one, on a new install);
    anyone signed in only when ORG_CREATION_OPEN_TO_ALL is on. Not an object: others get
    403, not 404."""
    if not user.is_authenticated:
        return False
    return bool(user.is_superuser or settings.ORG_CREATION_OPEN_TO_ALL)


def organization_role(user, organization: Organization) -> str | None:
    """The user's role in the organization (a page that already has an access object
    reads ``access.role`` instead of asking again)."""
    if not user.is_authenticated:
        return None
    return (
        OrganizationMembership.objects.filter(user=user, organization=organization)
        .values_list("role", flat=True)
        .first()
    )


def project_role(user, project: Project) -> str | None:
    if not user.is_authenticated:
        return None
    return (
        ProjectMembership.objects.filter(user=user, project=project)
        .values_list("role", flat=True)
        .first()
    )


# The one role table: which organization roles and which project roles grant each need.
# projects_for_user's filter and ProjectAccess.can are both derived from it.
ROLE_GRANTS: dict[Need, tuple[frozenset[str], frozenset[str]]] = {
    Need.READ: (
        frozenset({OrganizationMembership.Role.OWNER, OrganizationMembership.Role.READER}),
        frozenset({ProjectMembership.Role.OWNER, ProjectMembership.Role.MEMBER}),
    ),
    Need.USE: (
        frozenset({OrganizationMembership.Role.OWNER}),
        frozenset({ProjectMembership.Role.OWNER, ProjectMembership.Role.MEMBER}),
    ),
    Need.MANAGE: (
        frozenset({OrganizationMembership.Role.OWNER}),
        frozenset({ProjectMembership.Role.OWNER}),
    ),
}


def grants(org_role: str | None, project_role: str | None, need: Need) -> bool:
    """Whether either role grants ``need`` (the table above, read in Python)."""
    org_roles, project_roles = ROLE_GRANTS[need]
    return org_role in org_roles or project_role in project_roles


def project_condition(user, need: Need, *, prefix: str = "") -> Q:
    """The table above as a filter on projects (``prefix`` reaches a project from
    another model, e.g. ``"project__"`` on keys)."""
    org_roles, project_roles = ROLE_GRANTS[need]
    return Q(
        **{
            f"{prefix}organization__memberships__user": user,
            f"{prefix}organization__memberships__role__in": org_roles,
        }
    ) | Q(**{f"{prefix}memberships__user": user, f"{prefix}memberships__role__in": project_roles})


@dataclass(frozen=True)
class OrganizationAccess:
    """An organization the user can see and the user's role in it (None for someone
    who only belongs to some of its projects)."""

    organization: Organization
    role: str | None

    @property
    def is_owner(self) -> bool:
        return self.role == OrganizationMembership.Role.OWNER


def organization_access_for_user(user, public_id, *, manage: bool = False) -> OrganizationAccess:
    """The organization with the user's role in one query; 404 for outsiders, 403 when
    ``manage`` and not an owner."""
    if not user.is_authenticated:
        raise Http404("Not found")
    found = (
        Organization.objects.filter(public_id=parse_public_id(public_id))
        .filter(
            Exists(OrganizationMembership.objects.filter(organization=OuterRef("pk"), user=user))
            | Exists(
                ProjectMembership.objects.filter(project__organization=OuterRef("pk"), user=user)
            )
        )
        .annotate(
            viewer_role=Subquery(
                OrganizationMembership.objects.filter(
                    organization=OuterRef("pk"), user=user
                ).values("role")[:1]
            )
        )
        .first()
    )
    if found is None:
        raise Http404("Not found")
    access = OrganizationAccess(organization=found, role=found.viewer_role)
    if manage and not access.is_owner:
        raise PermissionDenied("Only organization owners can change this.")
    return access


def get_organization_for_user(user, public_id, *, manage: bool = False) -> Organization:
    """The organization, or 404 for outsiders; 403 when ``manage`` and not an owner."""
    return organization_access_for_user(user, public_id, manage=manage).organization


def projects_for_user(user, need: Need = Need.READ) -> QuerySet[Project]:
    """Projects where the user has at least ``need``; the queryset every form should use."""
    if not user.is_authenticated:
        return Project.objects.none()
    ids = Project.objects.filter(project_condition(user, need)).values("pk")
    return Project.objects.filter(pk__in=ids).select_related("organization")


@dataclass(frozen=True)
class ProjectAccess:
    """A project the user can read, with its organization loaded and both of the
    user's roles: a view asks ``access.can(...)`` instead of querying again."""

    project: Project
    org_role: str | None
    project_role: str | None

    def can(self, need: Need) -> bool:
        return grants(self.org_role, self.project_role, need)

    @property
    def is_org_owner(self) -> bool:
        return self.org_role == OrganizationMembership.Role.OWNER


class _CanAccess(Protocol):
    def can(self, need: Need) -> bool: ...


def refuse_unless[A: _CanAccess](access: A, need: Need, noun: str) -> A:
    """``access`` when its roles grant ``need``: 404 (not 403) if they do not even grant
    reading, so an outsider learns nothing of the object; 403 naming the ``noun`` otherwise."""
    if not access.can(Need.READ):
        raise Http404("Not found")
    if not access.can(need):
        raise PermissionDenied(f"Your role does not allow you to {need.value} this {noun}.")
    return access


def with_viewer_roles(
    queryset: QuerySet, user, *, prefix: str = "", organization: str = ""
) -> QuerySet:
    """``viewer_org_role`` and ``viewer_project_role`` annotated on rows that reach a
    project through ``prefix`` and the organization through ``organization`` (default:
    the project's). Each membership is unique per user, so [:1] is exact."""
    return queryset.annotate(
        viewer_org_role=Subquery(
            OrganizationMembership.objects.filter(
                organization=OuterRef(organization or f"{prefix}organization"), user=user
            ).values("role")[:1]
        ),
        viewer_project_role=Subquery(
            ProjectMembership.objects.filter(
                project=OuterRef(prefix.removesuffix("__") or "pk"), user=user
            ).values("role")[:1]
        ),
    )


def project_access_for_user(user, public_id, *, need: Need = Need.READ) -> ProjectAccess:
    """The project and the user's roles in one query; 404 if the user cannot read it,
    403 if the roles lack ``need``."""
    pid = parse_public_id(public_id)
    if not user.is_authenticated:
        raise Http404("Not found")
    found = with_viewer_roles(
        Project.objects.filter(public_id=pid).select_related("organization"), user
    ).first()
    if found is None:
        raise Http404("Not found")
    access = ProjectAccess(
        project=found, org_role=found.viewer_org_role, project_role=found.viewer_project_role
    )
    return refuse_unless(access, need, "project")


def get_project_for_user(user, public_id, *, need: Need = Need.READ) -> Project:
    """The project alone (for views that need no role beyond ``need``)."""
    return project_access_for_user(user, public_id, need=need).project


def can_on_project(user, project: Project, need: Need) -> bool:
    """For templates: whether to show a control."""
    return projects_for_user(user, need).filter(pk=project.pk).exists()
