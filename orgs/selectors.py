"""Reads for the console pages, always scoped by what the user may see."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.db.models import Q, QuerySet
from django.urls import NoReverseMatch, reverse
from django.utils import timezone

from usage.selectors import (
    SpendSummary,
    organization_spend_summary,
    project_has_recent_usage,
    projects_spend_summary,
)

from .access import Need, projects_for_user
from .models import (
    AuditEvent,
    Invitation,
    Organization,
    OrganizationMembership,
    Project,
    ProjectMembership,
    ProjectModelLimit,
)


def organization_projects_for_user(*, user, organization: Organization) -> QuerySet[Project]:
    """The organization's projects that ``user`` may read (all of them for org members)."""
    return projects_for_user(user, Need.READ).filter(organization=organization).order_by("name")


def organization_members(*, organization: Organization) -> QuerySet[OrganizationMembership]:
    return (
        OrganizationMembership.objects.filter(organization=organization)
        .select_related("user").order_by("user__username")
    )


def project_members(*, project: Project) -> QuerySet[ProjectMembership]:
    return ProjectMembership.objects.filter(project=project).select_related("user").order_by("user__username")


def organization_open_invitations(*, organization: Organization) -> QuerySet[Invitation]:
    """Invitations not accepted nor revoked (expired ones too: an owner may resend them)."""
    return (
        Invitation.objects.filter(organization=organization, accepted_at__isnull=True, revoked_at__isnull=True)
        .select_related("invited_by").prefetch_related("projects").order_by("email", "role")
    )


def project_open_invitations(*, project: Project) -> QuerySet[Invitation]:
    return organization_open_invitations(organization=project.organization).filter(projects=project)


def organization_spend_mtd(*, user, organization: Organization, role: str | None) -> tuple[SpendSummary, bool]:
    """Month-to-date spend the user may see, and whether it is the whole organization's.

    Organization owners and readers see every project's spend; anyone else (a project
    member or owner) only the sum over their own projects: the others 404 for them, so
    their spend must not show either. Unpriced calls are counted, never added as $0.
    ``role``: the user's organization role, from the page's access object.
    """
    if role is not None:
        return organization_spend_summary(organization=organization), True
    visible = projects_for_user(user, Need.READ).filter(organization=organization).values("pk")
    return projects_spend_summary(organization=organization, projects=visible), False


# --- Audit log ---------------------------------------------------------------------

def _member_since(organization: Organization) -> dict[int, dt.datetime]:
    """Each member's start in the organization: the earliest of their organization and
    project memberships there (a membership's created_at is when they joined)."""
    since: dict[int, dt.datetime] = {}
    rows = list(OrganizationMembership.objects.filter(organization=organization)
                .values_list("user_id", "created_at"))
    rows += list(ProjectMembership.objects.filter(project__organization=organization)
                 .values_list("user_id", "created_at"))
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
        user_scoped |= (Q(actor_id=user_id) | Q(target_type="auth.user", target_id=str(user_id))) & Q(
            occurred_at__gte=joined_at)
    sign_ins = Q(organization__isnull=True, action__startswith="auth.") & user_scoped
    events = AuditEvent.objects.filter(Q(organization=organization) | sign_ins)
    if action:
        # "key." is a family (every key action); "auth.login" is one action, not also
        # auth.login_failed.
        events = events.filter(action__startswith=action) if action.endswith(".") else events.filter(action=action)
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
    return sorted(set(
        AuditEvent.objects.filter(Q(organization=organization) | Q(action__startswith="auth."))
        .values_list("action", flat=True).distinct()
    ))


# --- Production-readiness checklist -------------------------------------------------

PASS, WARN, FAIL, NOT_CONFIGURED = "pass", "warn", "fail", "not configured"
NOT_APPLICABLE = "not applicable"
ASK_AN_OWNER = "A project owner can fix this"
ROTATION_WARN_DAYS = 14
USAGE_WINDOW = dt.timedelta(days=7)


@dataclass(frozen=True)
class ChecklistRow:
    title: str
    status: str  # pass / warn / fail / not configured / not applicable
    why: str
    fix_url: str
    fix_label: str


def _url(name: str, **kwargs) -> str:
    try:
        return reverse(name, kwargs=kwargs)
    except NoReverseMatch:
        return ""


def project_checklist(*, project: Project, now: dt.datetime | None = None,
                      can_manage: bool = True) -> list[ChecklistRow]:
    """The production checklist of the OpenAI SDK guide, computed from live data.

    ``can_manage``: whether the reader may follow the fixes that change the project (key,
    settings and ingestion-token pages); without it those rows name who can fix them
    instead of linking to a 403.
    """
    from keys.models import APIKey

    now = now or timezone.now()
    pid = project.public_id

    def fix(name: str, **kwargs) -> str:
        return _url(name, **kwargs) if can_manage else ""

    project_url = _url("orgs:project-detail", project_id=pid)
    settings_url = fix("orgs:project-settings", project_id=pid)
    keys = list(APIKey.objects.filter(project=project, status=APIKey.Status.ACTIVE).order_by("created_at"))
    rows: list[ChecklistRow] = []

    # 1. Project-scoped keys with minimum permissions.
    production = project.environment == Project.Environment.PRODUCTION
    broad = [k for k in keys if k.permissions == APIKey.Permissions.ALL]
    if not keys:
        rows.append(ChecklistRow("Project-scoped keys, minimum permissions", WARN,
                                 "No active key is stored for this project yet.",
                                 fix("keys:key-create", project_id=pid), "Add a key"))
    elif production and broad:
        rows.append(ChecklistRow(
            "Project-scoped keys, minimum permissions", WARN,
            f"{len(broad)} active key(s) in this production project have 'all' permissions "
            f"({', '.join(k.hint for k in broad[:3])}); restricted or read-only keys limit the damage of a leak.",
            _url("keys:key-detail", key_id=broad[0].public_id), "Open the key"))
    else:
        rows.append(ChecklistRow("Project-scoped keys, minimum permissions", PASS,
                                 f"{len(keys)} active project-scoped key(s)"
                                 + ("" if production else "; 'all' permissions are tolerated outside production") + ".",
                                 project_url + "#keys", "Keys"))

    # 2. Every key rotated within the period.
    period = dt.timedelta(days=project.rotation_period_days)
    overdue = [k for k in keys if k.rotated_or_created_at + period < now]
    soon = [k for k in keys if k not in overdue
            and k.rotated_or_created_at + period < now + dt.timedelta(days=ROTATION_WARN_DAYS)]
    if not keys:
        # Nothing to rotate is not "every key rotated": the row does not apply yet.
        rows.append(ChecklistRow(
            "Keys rotated within the period", NOT_APPLICABLE,
            f"No active keys yet: nothing to rotate. Once added, each is due every "
            f"{project.rotation_period_days} days.",
            fix("keys:key-create", project_id=pid), "Add a key"))
    elif overdue:
        rows.append(ChecklistRow(
            "Keys rotated within the period", FAIL,
            f"{len(overdue)} key(s) not rotated within {project.rotation_period_days} days "
            f"({', '.join(k.hint for k in overdue[:3])}).",
            fix("keys:key-rotate", key_id=overdue[0].public_id), "Rotate"))
    elif soon:
        rows.append(ChecklistRow(
            "Keys rotated within the period", WARN,
            f"{len(soon)} key(s) due for rotation within {ROTATION_WARN_DAYS} days.",
            fix("keys:key-rotate", key_id=soon[0].public_id), "Rotate"))
    else:
        rows.append(ChecklistRow(
            "Keys rotated within the period", PASS,
            f"Every active key was rotated (or created) within {project.rotation_period_days} days.",
            settings_url, "Rotation period"))

    # 3. Retries and timeouts.
    problems = []
    if project.max_retries < 1:
        problems.append("retries are off (max_retries = 0)")
    if project.request_timeout_seconds > 120:
        problems.append(f"the request timeout is {project.request_timeout_seconds:g} s (over 120 s)")
    rows.append(ChecklistRow(
        "Retries and timeouts configured", WARN if problems else PASS,
        ("; ".join(problems).capitalize() + ".") if problems else
        f"{project.max_retries} retries, {project.request_timeout_seconds:g} s request / "
        f"{project.connect_timeout_seconds:g} s connect timeout.",
        settings_url, "Client settings"))

    # 4. Circuit breaker.
    rows.append(ChecklistRow(
        "Circuit breaker on", PASS if project.circuit_breaker_enabled else FAIL,
        "Calls stop for a while after repeated upstream failures." if project.circuit_breaker_enabled
        else "The circuit breaker is off: a failing upstream is hammered with retries.",
        settings_url, "Client settings"))

    # 5. Budget with alerts (budgets land in a later issue).
    rows.append(ChecklistRow(
        "Budget with alerts", NOT_CONFIGURED,
        "Budgets and alerts are not available in this version yet.", "", ""))

    # 6. Output-token cap.
    rows.append(ChecklistRow(
        "Output-token cap", PASS if project.max_output_tokens else WARN,
        f"Calls are capped at {project.max_output_tokens} output tokens." if project.max_output_tokens
        else "No cap on output tokens: one runaway call can cost a lot.",
        settings_url, "Set a cap"))

    # 7. Request ids and usage logged (recent usage exists).
    usage_url = _url("usage:project-usage", project_id=pid)
    recent = project_has_recent_usage(project=project, since=now - USAGE_WINDOW)
    if recent:
        rows.append(ChecklistRow("Request ids and usage logged", PASS,
                                 "Usage with request ids was recorded in the last 7 days.",
                                 usage_url, "Usage"))
    else:
        rows.append(ChecklistRow("Request ids and usage logged", WARN,
                                 "No usage recorded in the last 7 days: report usage through the "
                                 "ingestion API or use the playground.",
                                 fix("usage:ingestion-tokens", project_id=pid), "Ingestion tokens"))
    if not can_manage:
        rows = [row if row.fix_url else
                ChecklistRow(row.title, row.status, row.why, "", ASK_AN_OWNER if row.status in (WARN, FAIL) else "")
                for row in rows]
    return rows


def project_model_limit(*, project_id: int, model: str) -> tuple[int | None, int | None] | None:
    """The project's own (rpm, tpm) for a model (``ProjectModelLimit``), or None: the rate
    limit of the client layer reads it on every call, in one query."""
    return (ProjectModelLimit.objects.filter(project_id=project_id, model_id=model)
            .values_list("rpm", "tpm").first())
