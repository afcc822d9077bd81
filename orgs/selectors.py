"""Reads for the console pages, always scoped by what the user may see."""

from __future__ import annotations

import datetime as dt

from django.db.models import Q, QuerySet

from .access import Need, projects_for_user
from .models import (
    AuditEvent,
    Invitation,
    Organization,
    OrganizationMembership,
    Project,
    ProjectMembership,
    ProjectModelLimit,
    ServiceAccount,
)


def organization_projects_for_user(*, user, organization: Organization) -> QuerySet[Project]:
    """The organization's projects that ``user`` may read (all of them for org members)."""
    return projects_for_user(user, Need.READ).filter(organization=organization).order_by("name")


def organization_members(*, organization: Organization) -> QuerySet[OrganizationMembership]:
    return (
        OrganizationMembership.objects.filter(organization=organization)
        .select_related("user")
        .order_by("user__username")
    )


def project_members(*, project: Project) -> QuerySet[ProjectMembership]:
    return (
        ProjectMembership.objects.filter(project=project)
        .select_related("user")
        .order_by("user__username")
    )


def organization_open_invitations(*, organization: Organization) -> QuerySet[Invitation]:
    """Invitations not accepted nor revoked (expired ones too: an owner may resend them)."""
    return (
        Invitation.objects.filter(
            organization=organization, accepted_at__isnull=True, revoked_at__isnull=True
        )
        .select_related("invited_by")
        .prefetch_related("projects")
        .order_by("email", "role")
    )


def project_open_invitations(*, project: Project) -> QuerySet[Invitation]:
    return organization_open_invitations(organization=project.organization).filter(projects=project)


# --- Audit log ---------------------------------------------------------------------


def _member_since(organization: Organization) -> dict[int, dt.datetime]:
    """Each member's start in the organization: the earliest of their organization and
    project memberships there (a membership's created_at is when they joined)."""
    since: dict[int, dt.datetime] = {}
    rows = list(
        OrganizationMembership.objects.filter(organization=organization).values_list(
            "user_id", "created_at"
        )
    )
    rows += list(
        ProjectMembership.objects.filter(project__organization=organization).values_list(
            "user_id", "created_at"
        )
    )
    for user_id, created_at in rows:
        if user_id not in since or created_at < since[user_id]:
            since[user_id] = created_at
    return since


def audit_events_for_organization(
    *,
    organization: Organization,
    action: str = "",
    actor: str = "",
    project: Project | None = None,
    since: dt.date | None = None,
    until: dt.date | None = None,
) -> QuerySet[AuditEvent]:
    """The organization's events, plus the user-scoped events (sign-ins, failed sign-ins,
    two-factor; they have no organization, as a user may belong to several) of its
    members, only from the moment each joined: never their history from before, made
    for another tenant or for none."""
    user_scoped = Q(pk__in=[])
    for user_id, joined_at in _member_since(organization).items():
        user_scoped |= (
            Q(actor_id=user_id) | Q(target_type="auth.user", target_id=str(user_id))
        ) & Q(occurred_at__gte=joined_at)
    sign_ins = Q(organization__isnull=True, action__startswith="auth.") & user_scoped
    events = AuditEvent.objects.filter(Q(organization=organization) | sign_ins)
    if action:
        # "key." is a family (every key action); "auth.login" is one action, not also
        # auth.login_failed.
        events = (
            events.filter(action__startswith=action)
            if action.endswith(".")
            else events.filter(action=action)
        )
    if actor:
        events = events.filter(actor_label__icontains=actor)
    if project is not None:
        events = events.filter(project=project)
    if since:
        events = events.filter(occurred_at__date__gte=since)
    if until:
        events = events.filter(occurred_at__date__lte=until)
    return events.select_related("project").order_by("-occurred_at", "-id")


def audit_actions(*, organization: Organization) -> list[str]:
    return sorted(
        set(
            AuditEvent.objects.filter(Q(organization=organization) | Q(action__startswith="auth."))
            .values_list("action", flat=True)
            .distinct()
        )
    )


def project_model_limit(*, project_id: int, model: str) -> tuple[int | None, int | None] | None:
    """The project's own (rpm, tpm) for a model (``ProjectModelLimit``), or None: the rate
    limit of the client layer reads it on every call, in one query."""
    return (
        ProjectModelLimit.objects.filter(project_id=project_id, model_id=model)
        .values_list("rpm", "tpm")
        .first()
    )


def organization_projects(*, organization: Organization) -> QuerySet[Project]:
    """Every project of the organization, archived ones too (the Admin API sync links them
    to OpenAI's by ``openai_project_id``)."""
    return Project.objects.filter(organization=organization).order_by("name", "pk")


def organization_by_id(*, organization_id: int) -> Organization | None:
    """The organization a task was given (None when it was deleted since)."""
    return Organization.objects.filter(pk=organization_id).first()


def project_service_accounts(*, project: Project) -> QuerySet[ServiceAccount]:
    """Every service account of the project, those deleted upstream too (the Admin API
    sync links them to OpenAI's by ``openai_id``)."""
    return ServiceAccount.objects.filter(project=project).order_by("name", "pk")


def audit_upstream_event_ids(*, organization: Organization, event_ids) -> set[str]:
    """Which of OpenAI's audit-log event ids the console's log already holds (the pull
    records each once; rows written by ``audit_log_upstream`` carry the id as target_id)."""
    ids = [str(i) for i in event_ids if i]
    found: set[str] = set()
    for start in range(0, len(ids), 500):
        found.update(
            AuditEvent.objects.filter(
                organization=organization,
                target_type="openai.event",
                target_id__in=ids[start : start + 500],
            ).values_list("target_id", flat=True)
        )
    return found
