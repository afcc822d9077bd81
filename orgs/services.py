"""Writes on organizations, projects, memberships and service accounts.

One function per action, one transaction each, every change audited. Access checks
happen in the views (through orgs/access.py) before these are called.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from .audit import audit_log
from .models import (
    Organization,
    OrganizationMembership,
    Project,
    ProjectMembership,
    ProjectModelLimit,
    ServiceAccount,
)

ORGANIZATION_FIELDS = ["name", "tier", "openai_org_id", "billing_timezone"]
PROJECT_SETTINGS_FIELDS = [
    "name", "environment", "status", "openai_project_id", "allowed_models",
    "max_output_tokens", "rotation_period_days", "request_timeout_seconds",
    "connect_timeout_seconds", "max_retries", "circuit_breaker_enabled",
]


def _changes(instance, fields: list[str], values: dict[str, Any]) -> dict[str, list]:
    """Set ``values`` on ``instance``; return {field: [old, new]} for what changed."""
    changed: dict[str, list] = {}
    for field in fields:
        if field not in values:
            continue
        old, new = getattr(instance, field), values[field]
        if old != new:
            changed[field] = [_jsonable(old), _jsonable(new)]
            setattr(instance, field, new)
    return changed


def _jsonable(value):
    if value is None or isinstance(value, (bool, int, float, str, list, dict)):
        return value
    return str(value)


@transaction.atomic
def organization_update(*, organization: Organization, actor, request=None, **values) -> dict:
    """Change name, tier, OpenAI org id or billing timezone. Returns what changed."""
    changed = _changes(organization, ORGANIZATION_FIELDS, values)
    if changed:
        organization.full_clean()
        organization.save()
        audit_log(action="organization.update", actor=actor, organization=organization,
                  target=organization, request=request, detail={"changes": changed})
    return changed


@transaction.atomic
def project_create(
    *, organization: Organization, name: str, environment: str, actor, request=None
) -> Project:
    project = Project(organization=organization, name=name.strip(), environment=environment)
    project.full_clean()
    project.save()
    audit_log(action="project.create", actor=actor, project=project, target=project,
              request=request, detail={"environment": environment})
    return project


@transaction.atomic
def project_update_settings(*, project: Project, actor, request=None, **values) -> dict:
    """Change a project's settings (allowed models, output cap, rotation, client settings)."""
    changed = _changes(project, PROJECT_SETTINGS_FIELDS, values)
    if changed:
        project.full_clean()
        project.save()
        audit_log(action="project.settings_update", actor=actor, project=project,
                  target=project, request=request, detail={"changes": changed})
    return changed


@transaction.atomic
def project_model_limit_set(
    *, project: Project, model_id: str, rpm: int | None, tpm: int | None, actor, request=None
) -> ProjectModelLimit:
    """Create or change the RPM/TPM override of one model in a project."""
    if rpm is None and tpm is None:
        raise ValidationError({"rpm": "Give an RPM or a TPM limit (or remove the override)."})
    limit, created = ProjectModelLimit.objects.get_or_create(
        project=project, model_id=model_id, defaults={"rpm": rpm, "tpm": tpm}
    )
    old = None if created else [limit.rpm, limit.tpm]
    if not created:
        limit.rpm, limit.tpm = rpm, tpm
        limit.full_clean()
        limit.save()
    audit_log(action="project.model_limit_set", actor=actor, project=project, target=project,
              request=request,
              detail={"model": model_id, "rpm": rpm, "tpm": tpm, "previous": old})
    return limit


@transaction.atomic
def project_model_limit_remove(*, limit: ProjectModelLimit, actor, request=None) -> None:
    project = limit.project
    detail = {"model": limit.model_id, "rpm": limit.rpm, "tpm": limit.tpm}
    limit.delete()
    audit_log(action="project.model_limit_remove", actor=actor, project=project, target=project,
              request=request, detail=detail)


def _username(user) -> str:
    return user.get_username()


@transaction.atomic
def organization_membership_add(
    *, organization: Organization, user, role: str, actor, request=None
) -> OrganizationMembership:
    if OrganizationMembership.objects.filter(organization=organization, user=user).exists():
        raise ValidationError({"user": f"{_username(user)} is already a member; change the role instead."})
    membership = OrganizationMembership(organization=organization, user=user, role=role)
    membership.full_clean()
    try:
        membership.save()
    except IntegrityError as exc:  # a concurrent add
        raise ValidationError({"user": f"{_username(user)} is already a member."}) from exc
    audit_log(action="membership.add", actor=actor, organization=organization, target=user,
              request=request, detail={"scope": "organization", "user": _username(user), "role": role})
    return membership


def _would_leave_no_owner(membership: OrganizationMembership) -> bool:
    if membership.role != OrganizationMembership.Role.OWNER:
        return False
    return not OrganizationMembership.objects.filter(
        organization_id=membership.organization_id, role=OrganizationMembership.Role.OWNER
    ).exclude(pk=membership.pk).exists()


@transaction.atomic
def organization_membership_change_role(
    *, membership: OrganizationMembership, role: str, actor, request=None
) -> OrganizationMembership:
    # Lock the organization's owner rows so two demotions cannot both pass the check.
    list(OrganizationMembership.objects.select_for_update().filter(
        organization_id=membership.organization_id, role=OrganizationMembership.Role.OWNER))
    old = membership.role
    if old == role:
        return membership
    if role != OrganizationMembership.Role.OWNER and _would_leave_no_owner(membership):
        raise ValidationError({"role": "An organization needs at least one owner: make someone else owner first."})
    membership.role = role
    membership.full_clean()
    membership.save()
    audit_log(action="membership.role_change", actor=actor, organization=membership.organization,
              target=membership.user, request=request,
              detail={"scope": "organization", "user": _username(membership.user), "from": old, "to": role})
    return membership


@transaction.atomic
def organization_membership_remove(*, membership: OrganizationMembership, actor, request=None) -> None:
    list(OrganizationMembership.objects.select_for_update().filter(
        organization_id=membership.organization_id, role=OrganizationMembership.Role.OWNER))
    if _would_leave_no_owner(membership):
        raise ValidationError({"membership": "An organization needs at least one owner: make someone else owner first."})
    organization, user, role = membership.organization, membership.user, membership.role
    membership.delete()
    audit_log(action="membership.remove", actor=actor, organization=organization, target=user,
              request=request, detail={"scope": "organization", "user": _username(user), "role": role})


@transaction.atomic
def project_membership_add(*, project: Project, user, role: str, actor, request=None) -> ProjectMembership:
    if ProjectMembership.objects.filter(project=project, user=user).exists():
        raise ValidationError({"user": f"{_username(user)} is already in this project; change the role instead."})
    membership = ProjectMembership(project=project, user=user, role=role)
    membership.full_clean()
    try:
        membership.save()
    except IntegrityError as exc:
        raise ValidationError({"user": f"{_username(user)} is already in this project."}) from exc
    audit_log(action="membership.add", actor=actor, project=project, target=user, request=request,
              detail={"scope": "project", "user": _username(user), "role": role})
    return membership


@transaction.atomic
def project_membership_change_role(
    *, membership: ProjectMembership, role: str, actor, request=None
) -> ProjectMembership:
    old = membership.role
    if old == role:
        return membership
    membership.role = role
    membership.full_clean()
    membership.save()
    audit_log(action="membership.role_change", actor=actor, project=membership.project,
              target=membership.user, request=request,
              detail={"scope": "project", "user": _username(membership.user), "from": old, "to": role})
    return membership


@transaction.atomic
def project_membership_remove(*, membership: ProjectMembership, actor, request=None) -> None:
    project, user, role = membership.project, membership.user, membership.role
    membership.delete()
    audit_log(action="membership.remove", actor=actor, project=project, target=user, request=request,
              detail={"scope": "project", "user": _username(user), "role": role})


@transaction.atomic
def service_account_create(
    *, project: Project, name: str, openai_id: str = "", actor, request=None
) -> ServiceAccount:
    account = ServiceAccount(project=project, name=name.strip(), openai_id=openai_id.strip())
    account.full_clean()
    account.save()
    audit_log(action="service_account.create", actor=actor, project=project, target=account,
              request=request, detail={"name": account.name})
    return account
