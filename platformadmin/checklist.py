"""The production-readiness checklist of a project (the OpenAI SDK guide's list, from
live data). A composed feature: it reads keys (active keys, rotation due dates) and usage
(recent records) through their selectors, so it lives above both apps, not in orgs.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.urls import NoReverseMatch, reverse
from django.utils import timezone

from keys.models import APIKey
from keys.reminders import FIRST_REMINDER_DAYS, api_key_rotation_stage
from keys.selectors import project_keys
from orgs.models import Project
from usage.budgets import budget_statuses, budgets_for_project, spend_text
from usage.selectors import project_has_recent_usage

from .templatetags.console_format import format_count, format_money

PASS, WARN, FAIL, NOT_CONFIGURED = "pass", "warn", "fail", "not configured"
NOT_APPLICABLE = "not applicable"
ASK_AN_OWNER = "A project owner can fix this"
ROTATION_WARN_DAYS = FIRST_REMINDER_DAYS  # amber from the first rotation reminder on
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


def _first_upper(text: str) -> str:
    return text[:1].upper() + text[1:]


def _budget_row(project: Project, *, now: dt.datetime, can_manage: bool) -> ChecklistRow:
    """Green when the project or its organization has an active budget, with the project
    budget's spend against its amount (the organization's spend is not shown here: a
    project member may read this page)."""
    budgets = budgets_for_project(project=project)
    org = project.organization
    list_url = _url("usage:budget-list", org_id=org.public_id)
    if not budgets:
        create = _url("usage:budget-create", org_id=org.public_id) if can_manage else ""
        return ChecklistRow(
            "Budget with alerts",
            NOT_CONFIGURED,
            "Neither this project nor its organization has an active budget: nobody is "
            "alerted as spend grows.",
            f"{create}?project={project.public_id}" if create else "",
            "Create a budget",
        )
    parts = []
    for status in budget_statuses(budgets=budgets, now=now):
        if status.budget.project_id:
            parts.append(
                f"project budget: {spend_text(status.spend, status.unpriced_requests)} of "
                f"{format_money(status.budget.amount)} ({status.percent}%) in "
                f"{status.period.label}, {status.state}"
            )
        else:
            parts.append(f"the organization's budget of {format_money(status.budget.amount)}")
    thresholds = sorted({t for b in budgets for t in b.thresholds})
    return ChecklistRow(
        "Budget with alerts",
        PASS,
        f"{_first_upper('; '.join(parts))}; alerts at {', '.join(map(str, thresholds))}%.",
        list_url,
        "Budgets",
    )


def project_checklist(
    *, project: Project, now: dt.datetime | None = None, can_manage: bool = True
) -> list[ChecklistRow]:
    """The production checklist of the OpenAI SDK guide, computed from live data.

    ``can_manage``: whether the reader may follow the fixes that change the project (key,
    settings and ingestion-token pages); without it those rows name who can fix them
    instead of linking to a 403.
    """
    now = now or timezone.now()
    pid = project.public_id

    def fix(name: str, **kwargs) -> str:
        return _url(name, **kwargs) if can_manage else ""

    project_url = _url("orgs:project-detail", project_id=pid)
    settings_url = fix("orgs:project-settings", project_id=pid)
    keys = sorted(
        (k for k in project_keys(project=project) if k.is_active), key=lambda k: k.created_at
    )
    for key in keys:
        key.project = project  # the rotation period is the project's: no query per key
        key.organization = project.organization  # and the billing timezone its organization's
    rows: list[ChecklistRow] = []

    # 1. Project-scoped keys with minimum permissions.
    production = project.environment == Project.Environment.PRODUCTION
    broad = [k for k in keys if k.permissions == APIKey.Permissions.ALL]
    if not keys:
        rows.append(
            ChecklistRow(
                "Project-scoped keys, minimum permissions",
                WARN,
                "No active key is stored for this project yet.",
                fix("keys:key-create", project_id=pid),
                "Add a key",
            )
        )
    elif production and broad:
        rows.append(
            ChecklistRow(
                "Project-scoped keys, minimum permissions",
                WARN,
                f"{len(broad)} active key(s) in this production project have 'all' permissions "
                f"({', '.join(k.hint for k in broad[:3])}); restricted or read-only keys limit the damage of a leak.",
                _url("keys:key-detail", key_id=broad[0].public_id),
                "Open the key",
            )
        )
    else:
        rows.append(
            ChecklistRow(
                "Project-scoped keys, minimum permissions",
                PASS,
                f"{len(keys)} active project-scoped key(s)"
                + ("" if production else "; 'all' permissions are tolerated outside production")
                + ".",
                project_url + "#keys",
                "Keys",
            )
        )

    # 2. Every key rotated within the period.
    # Due dates and stages from keys.reminders, the rule the reminders and the Rotation page
    # follow: red once a key is overdue, amber from its first reminder (14 calendar days
    # before, in the billing timezone), green otherwise.
    stages = [(k, api_key_rotation_stage(api_key=k, now=now)) for k in keys]
    overdue = [k for k, s in stages if s and s.overdue]
    soon = sorted(
        ((k, s) for k, s in stages if s and s.stage and not s.overdue), key=lambda p: p[1].due_at
    )
    if not keys:
        # Nothing to rotate is not "every key rotated": the row does not apply yet.
        rows.append(
            ChecklistRow(
                "Keys rotated within the period",
                NOT_APPLICABLE,
                f"No active keys yet: nothing to rotate. Once added, each is due every "
                f"{project.rotation_period_days} days.",
                fix("keys:key-create", project_id=pid),
                "Add a key",
            )
        )
    elif overdue:
        rows.append(
            ChecklistRow(
                "Keys rotated within the period",
                FAIL,
                f"{len(overdue)} key(s) not rotated within {project.rotation_period_days} days "
                f"({', '.join(k.hint for k in overdue[:3])}).",
                fix("keys:key-rotate", key_id=overdue[0].public_id),
                "Rotate",
            )
        )
    elif soon:
        rows.append(
            ChecklistRow(
                "Keys rotated within the period",
                WARN,
                f"{len(soon)} key(s) due for rotation within {ROTATION_WARN_DAYS} days "
                f"(first: {soon[0][0].hint}, {soon[0][1].due_local:%Y-%m-%d}).",
                fix("keys:key-rotate", key_id=soon[0][0].public_id),
                "Rotate",
            )
        )
    else:
        rows.append(
            ChecklistRow(
                "Keys rotated within the period",
                PASS,
                f"Every active key was rotated (or created) within {project.rotation_period_days} days.",
                settings_url,
                "Rotation period",
            )
        )

    # 3. Retries and timeouts.
    problems = []
    if project.max_retries < 1:
        problems.append("retries are off (max_retries = 0)")
    if project.request_timeout_seconds > 120:
        problems.append(
            f"the request timeout is {project.request_timeout_seconds:g} s (over 120 s)"
        )
    rows.append(
        ChecklistRow(
            "Retries and timeouts configured",
            WARN if problems else PASS,
            ("; ".join(problems).capitalize() + ".")
            if problems
            else f"{project.max_retries} retries, {project.request_timeout_seconds:g} s request / "
            f"{project.connect_timeout_seconds:g} s connect timeout.",
            settings_url,
            "Client settings",
        )
    )

    # 4. Circuit breaker.
    rows.append(
        ChecklistRow(
            "Circuit breaker on",
            PASS if project.circuit_breaker_enabled else FAIL,
            "Calls stop for a while after repeated upstream failures."
            if project.circuit_breaker_enabled
            else "The circuit breaker is off: a failing upstream is hammered with retries.",
            settings_url,
            "Client settings",
        )
    )

    # 5. Budget with alerts: the project's own or its organization's, active.
    rows.append(_budget_row(project, now=now, can_manage=can_manage))

    # 6. Output-token cap.
    rows.append(
        ChecklistRow(
            "Output-token cap",
            PASS if project.max_output_tokens else WARN,
            f"Calls are capped at {format_count(project.max_output_tokens)} output tokens."
            if project.max_output_tokens
            else "No cap on output tokens: one runaway call can cost a lot.",
            settings_url,
            "Set a cap",
        )
    )

    # 7. Request ids and usage logged (recent usage exists).
    usage_url = _url("usage:project-usage", project_id=pid)
    recent = project_has_recent_usage(project=project, since=now - USAGE_WINDOW)
    if recent:
        rows.append(
            ChecklistRow(
                "Request ids and usage logged",
                PASS,
                "Usage with request ids was recorded in the last 7 days.",
                usage_url,
                "Usage",
            )
        )
    else:
        rows.append(
            ChecklistRow(
                "Request ids and usage logged",
                WARN,
                "No usage recorded in the last 7 days: report usage through the "
                "ingestion API or use the playground.",
                fix("usage:ingestion-tokens", project_id=pid),
                "Ingestion tokens",
            )
        )
    if not can_manage:
        rows = [
            row
            if row.fix_url
            else ChecklistRow(
                row.title,
                row.status,
                row.why,
                "",
                ASK_AN_OWNER if row.status in (WARN, FAIL) else "",
            )
            for row in rows
        ]
    return rows
