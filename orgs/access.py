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
from django.db.models import Q, QuerySet
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


def _project_with_roles_sql(connection) -> str:
    """SELECT the project's columns and the user's two roles (built from the models' meta).

    Written out rather than built by the ORM on every call: the annotated ORM query took
    about 1 ms of Python to build and compile per request for a 0.05 ms lookup, and this
    check runs on every project page and playground call. Each membership is unique per
    user (constraints orgs_orgmembership_unique_user_org / _projmembership_unique_user_project);
    LIMIT 1 keeps each subquery scalar regardless.
    """
    qn = connection.ops.quote_name
    p, om, pm = Project._meta, OrganizationMembership._meta, ProjectMembership._meta

    def col(meta, name: str) -> str:
        return qn(meta.get_field(name).column)

    columns = ", ".join(f"p.{qn(f.column)}" for f in p.concrete_fields)
    return (
        f"SELECT {columns}, "
        f"(SELECT om.{col(om, 'role')} FROM {qn(om.db_table)} om WHERE om.{col(om, 'organization')} = "
        f"p.{col(p, 'organization')} AND om.{col(om, 'user')} = %s LIMIT 1) AS _user_org_role, "
        f"(SELECT pm.{col(pm, 'role')} FROM {qn(pm.db_table)} pm WHERE pm.{col(pm, 'project')} = "
        f"p.{qn(p.pk.column)} AND pm.{col(pm, 'user')} = %s LIMIT 1) AS _user_project_role "
        f"FROM {qn(p.db_table)} p WHERE p.{col(p, 'public_id')} = %s"
    )


_SQL_CACHE: dict[str, str] = {}


def get_project_for_user(user, public_id, *, need: Need = Need.READ) -> Project:
    """The project, or 404 if the user cannot read it, or 403 if it lacks ``need``.

    One query for the project and the user's organization and project roles, judged by
    the same rules as projects_for_user's conditions; then the organization (every
    caller uses it) by primary key.
    """
    from django.db import connections, router

    pid = _parse_uuid(public_id)
    if not user.is_authenticated:
        raise Http404("Not found")
    alias = router.db_for_read(Project)
    connection = connections[alias]
    sql = _SQL_CACHE.get(connection.vendor)
    if sql is None:
        sql = _SQL_CACHE[connection.vendor] = _project_with_roles_sql(connection)
    params = [user.pk, user.pk, Project._meta.get_field("public_id").get_db_prep_value(pid, connection)]
    rows = list(Project.objects.raw(sql, params).using(alias))
    project = rows[0] if rows else None
    if project is None or not _project_grants(project._user_org_role, project._user_project_role, Need.READ):
        raise Http404("Not found")
    if need != Need.READ and not _project_grants(project._user_org_role, project._user_project_role, need):
        raise PermissionDenied(f"Your role does not allow you to {need.value} this project.")
    project.organization  # noqa: B018 -- loaded now, as select_related did before
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
