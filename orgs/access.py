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

from django.core.exceptions import PermissionDenied
from django.db.models import OuterRef, Q, QuerySet, Subquery
from django.http import Http404

from .models import Organization, OrganizationMembership, Project, ProjectMembership


class Need(enum.StrEnum):
    """What an action needs on a project."""

    READ = "read"  # see it
    USE = "use"  # call models with its keys (playground)
    MANAGE = "manage"  # change it


def _parse_uuid(value) -> uuid.UUID:
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


def organization_role(user, organization: Organization) -> str | None:
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


def get_organization_for_user(user, public_id, *, manage: bool = False) -> Organization:
    """The organization, or 404 for outsiders; 403 when ``manage`` and not an owner."""
    org = organizations_for_user(user).filter(public_id=_parse_uuid(public_id)).first()
    if org is None:
        raise Http404("Not found")
    if manage and organization_role(user, org) != OrganizationMembership.Role.OWNER:
        raise PermissionDenied("Only organization owners can change this.")
    return org


def projects_for_user(user, need: Need = Need.READ) -> QuerySet[Project]:
    """Projects where the user has at least ``need``; the queryset every form should use."""
    if not user.is_authenticated:
        return Project.objects.none()
    org_owner = Q(
        organization__memberships__user=user,
        organization__memberships__role=OrganizationMembership.Role.OWNER,
    )
    org_reader = Q(
        organization__memberships__user=user,
        organization__memberships__role=OrganizationMembership.Role.READER,
    )
    proj_owner = Q(memberships__user=user, memberships__role=ProjectMembership.Role.OWNER)
    proj_member = Q(memberships__user=user, memberships__role=ProjectMembership.Role.MEMBER)
    if need == Need.READ:
        condition = org_owner | org_reader | proj_owner | proj_member
    elif need == Need.USE:
        condition = org_owner | proj_owner | proj_member
    else:
        condition = org_owner | proj_owner
    ids = Project.objects.filter(condition).values("pk")
    return Project.objects.filter(pk__in=ids).select_related("organization")


# Which roles grant each need: the same rules as projects_for_user's conditions.
_ORG_ROLES = {
    Need.READ: {OrganizationMembership.Role.OWNER, OrganizationMembership.Role.READER},
    Need.USE: {OrganizationMembership.Role.OWNER},
    Need.MANAGE: {OrganizationMembership.Role.OWNER},
}
_PROJECT_ROLES = {
    Need.READ: {ProjectMembership.Role.OWNER, ProjectMembership.Role.MEMBER},
    Need.USE: {ProjectMembership.Role.OWNER, ProjectMembership.Role.MEMBER},
    Need.MANAGE: {ProjectMembership.Role.OWNER},
}


def _project_grants(org_role: str | None, project_role: str | None, need: Need) -> bool:
    return org_role in _ORG_ROLES[need] or project_role in _PROJECT_ROLES[need]


def get_project_for_user(user, public_id, *, need: Need = Need.READ) -> Project:
    """The project, or 404 if the user cannot read it, or 403 if it lacks ``need``.

    One query: the project with the user's organization role and project role
    (each membership is unique per user), judged by the rules of projects_for_user.
    """
    pid = _parse_uuid(public_id)
    if not user.is_authenticated:
        raise Http404("Not found")
    rows = list(
        Project.objects.filter(public_id=pid)
        .select_related("organization")
        .annotate(
            _user_org_role=Subquery(
                OrganizationMembership.objects.filter(organization=OuterRef("organization_id"), user=user)
                .values("role")[:1]
            ),
            _user_project_role=Subquery(
                ProjectMembership.objects.filter(project=OuterRef("pk"), user=user).values("role")[:1]
            ),
        )[:1]
    )
    project = rows[0] if rows else None
    if project is None or not _project_grants(project._user_org_role, project._user_project_role, Need.READ):
        raise Http404("Not found")
    if need != Need.READ and not _project_grants(project._user_org_role, project._user_project_role, need):
        raise PermissionDenied(f"Your role does not allow you to {need.value} this project.")
    return project


def can_on_project(user, project: Project, need: Need) -> bool:
    """For templates: whether to show a control."""
    return projects_for_user(user, need).filter(pk=project.pk).exists()


def api_keys_for_user(user, need: Need = Need.READ):
    """Keys the user may see (project keys via projects; admin keys to org members)."""
    from keys.models import APIKey

    if not user.is_authenticated:
        return APIKey.objects.none()
    projects = projects_for_user(user, need).values("pk")
    if need == Need.READ:
        admin_orgs = OrganizationMembership.objects.filter(user=user).values("organization")
    else:
        admin_orgs = OrganizationMembership.objects.filter(
            user=user, role=OrganizationMembership.Role.OWNER
        ).values("organization")
    return APIKey.objects.filter(
        Q(project__in=projects) | Q(project__isnull=True, organization__in=admin_orgs)
    ).select_related("organization", "project")


def get_api_key_for_user(user, public_id, *, need: Need = Need.READ):
    """The key, or 404 if the user cannot read it, or 403 if it lacks ``need``."""
    api_key = api_keys_for_user(user, Need.READ).filter(public_id=_parse_uuid(public_id)).first()
    if api_key is None:
        raise Http404("Not found")
    if need != Need.READ and not api_keys_for_user(user, need).filter(pk=api_key.pk).exists():
        raise PermissionDenied(f"Your role does not allow you to {need.value} this key.")
    return api_key
