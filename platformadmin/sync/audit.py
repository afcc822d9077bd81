"""The pull of OpenAI's audit log: what changed outside the console, in the console's log.

Each upstream event becomes one row of the console's audit log (action ``upstream.<type>``,
the detail marked ``"upstream": "openai"`` and keyed by the upstream event id, the actor
being the session user's e-mail or the API key id), dated when it happened upstream.
The stream's cursor (``SyncCursor`` "audit_log") is the newest ``effective_at`` seen; the
next pull lists from that second on (``gte``: several events share a second) and skips
ids already recorded, so every event is recorded once however often it is listed.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from celery import shared_task
from django.db import transaction
from django.utils import timezone

from keys.selectors import organization_admin_key, organizations_with_admin_key
from orgs.audit import audit_log_upstream
from orgs.selectors import audit_upstream_event_ids, organization_by_id, organization_projects
from platformadmin.openai.admin import AdminAPIError, admin_list
from platformadmin.redaction import redact

from .models import SyncCursor, SyncRun

STREAM = "audit_log"
FIRST_PULL_DAYS = 30
DETAIL_MAX_CHARS = 2000  # the event's own fields, bounded (a hostile upstream can send MBs)


def _actor(actor: dict | None) -> tuple[str, dict]:
    """("openai:<who>", the actor for the detail): a session user's e-mail or a key id."""
    actor = actor or {}
    if actor.get("type") == "session" or actor.get("session"):
        session = actor.get("session") or {}
        user = session.get("user") or {}
        who = user.get("email") or user.get("id") or "unknown user"
        return f"openai:{who}", {
            "type": "session",
            "email": user.get("email"),
            "user_id": user.get("id"),
            "ip_address": session.get("ip_address"),
        }
    if actor.get("type") == "api_key" or actor.get("api_key"):
        key = actor.get("api_key") or {}
        owner = key.get("user") or key.get("service_account") or {}
        return f"openai:key {key.get('id') or '?'}", {
            "type": "api_key",
            "api_key_id": key.get("id"),
            "owner": owner.get("email") or owner.get("id"),
        }
    return "openai", {"type": actor.get("type") or "unknown"}


def _event_fields(event: dict) -> dict:
    """The event-specific field (named like the type, e.g. ``api_key.created``), bounded."""
    data = event.get(event.get("type") or "") or {}
    text = json.dumps(data, default=str, sort_keys=True)
    if len(text) > DETAIL_MAX_CHARS:
        return {"truncated": redact(text[:DETAIL_MAX_CHARS])}
    return data if isinstance(data, dict) else {"value": data}


def _cursor_second(position: str) -> int | None:
    try:
        return int(position.split("|")[0])
    except (ValueError, IndexError):
        return None


def audit_log_pull(*, organization, now: datetime | None = None, actor=None) -> SyncRun:
    """Pull the audit log since the cursor into the console's audit log (idempotent)."""
    now = now or timezone.now()
    run = SyncRun.objects.create(
        organization=organization, kind=SyncRun.Kind.AUDIT_LOG, started_at=now, triggered_by=actor
    )
    report = {"created": 0, "unchanged": 0, "errors": [], "types": {}}
    admin_key = organization_admin_key(organization=organization)
    cursor, _ = SyncCursor.objects.get_or_create(organization=organization, stream=STREAM)
    since = _cursor_second(cursor.position)
    if since is None:
        since = int((now - timedelta(days=FIRST_PULL_DAYS)).timestamp())
    try:
        if admin_key is None:
            raise AdminAPIError(
                f"{organization.name} has no admin key: store one (sk-admin-…) on the "
                "organization page to pull OpenAI's audit log."
            )
        events = [
            item.to_dict()
            for item in admin_list(
                admin_key,
                "read OpenAI's audit log",
                lambda api: api.audit_logs.list(effective_at={"gte": since}, limit=100),
            )
        ]
    except AdminAPIError as exc:
        report["errors"].append(str(exc))
        return _finish(run, SyncRun.Status.FAILED, report)
    projects = {
        p.openai_project_id: p
        for p in organization_projects(organization=organization).exclude(openai_project_id="")
    }
    # Oldest first, so the console's log reads in upstream order.
    events.sort(key=lambda e: (int(e.get("effective_at") or 0), str(e.get("id"))))
    with transaction.atomic():
        # Race: two pulls of one organization (beat and the button) serialize on the
        # cursor row; the second sees the first one's rows and records nothing twice.
        cursor = SyncCursor.objects.select_for_update().get(pk=cursor.pk)
        seen = audit_upstream_event_ids(
            organization=organization, event_ids=[str(e.get("id")) for e in events]
        )
        newest = _cursor_second(cursor.position) or since
        for event in events:
            event_id = str(event.get("id") or "")
            effective = int(event.get("effective_at") or 0)
            newest = max(newest, effective)
            if not event_id or event_id in seen:
                report["unchanged"] += 1
                continue
            seen.add(event_id)
            type_ = str(event.get("type") or "unknown")[:48]
            label, actor_detail = _actor(event.get("actor"))
            upstream_project = event.get("project") or {}
            audit_log_upstream(
                organization=organization,
                project=projects.get(upstream_project.get("id") or ""),
                occurred_at=datetime.fromtimestamp(effective, UTC),
                action=f"upstream.{type_}",
                actor_label=label,
                detail={
                    "upstream_event_id": event_id,
                    "type": type_,
                    "actor": actor_detail,
                    "openai_project_id": upstream_project.get("id"),
                    "openai_project_name": upstream_project.get("name"),
                    "event": _event_fields(event),
                },
            )
            report["created"] += 1
            report["types"][type_] = report["types"].get(type_, 0) + 1
        cursor.position = str(newest)
        cursor.save(update_fields=["position", "updated_at"])
    return _finish(run, SyncRun.Status.SUCCEEDED, report)


def _finish(run: SyncRun, status: str, report: dict) -> SyncRun:
    run.status, run.report, run.finished_at = status, report, timezone.now()
    run.save(update_fields=["status", "report", "finished_at"])
    return run


@shared_task(
    name="sync.audit_log_pull",
    acks_late=True,
    reject_on_worker_lost=True,
    soft_time_limit=240,
    time_limit=300,
)
def audit_log_pull_task(organization_id: int) -> str | None:
    organization = organization_by_id(organization_id=organization_id)
    if organization is None:
        return None
    return audit_log_pull(organization=organization).status


@shared_task(name="sync.audit_log_pull_all", soft_time_limit=50, time_limit=60)
def audit_log_pull_all() -> int:
    """Every 15 minutes: one ``sync.audit_log_pull`` per organization with an admin key."""
    ids = organizations_with_admin_key()
    for organization_id in ids:
        audit_log_pull_task.delay(organization_id)
    return len(ids)
