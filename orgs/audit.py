"""The one way to write the audit log."""

from __future__ import annotations

from typing import Any

from django.db import models
from django.utils import timezone

from platformadmin.redaction import redact

from .models import AuditEvent, Organization, Project


def client_ip(request) -> str | None:
    """The client address as Django sees it (REMOTE_ADDR; put a proxy's real-IP
    middleware in front if the console runs behind one)."""
    if request is None:
        return None
    return request.META.get("REMOTE_ADDR") or None


def audit_log(
    *,
    action: str,
    actor=None,
    organization: Organization | None = None,
    project: Project | None = None,
    target: models.Model | None = None,
    request=None,
    detail: dict[str, Any] | None = None,
) -> AuditEvent:
    """Append one event. ``action`` is dotted, e.g. ``key.create``, ``auth.login_failed``.

    Never put a secret in ``detail``: hints and ids only. As a last guard (the log is
    append-only, so a leaked value could never be cleaned), every string in ``detail``
    and the target's label is redacted by shape before the row is written.
    """
    if actor is None and request is not None and getattr(request, "user", None) is not None:
        actor = request.user if request.user.is_authenticated else None
    if project is not None and organization is None:
        organization = project.organization
    label = actor.get_username() if actor is not None else (detail or {}).get("username", "system")
    return AuditEvent.objects.create(
        occurred_at=timezone.now(),
        organization=organization,
        project=project,
        actor=actor,
        actor_label=str(label)[:150],
        action=action,
        target_type=target._meta.label_lower if target is not None else "",
        target_id=str(getattr(target, "public_id", None) or getattr(target, "pk", "") or "")
        if target is not None
        else "",
        target_label=redact(str(target))[:255] if target is not None else "",
        ip_address=client_ip(request),
        detail=_redact_detail(detail or {}),
    )


def _redact_detail(value: Any) -> Any:
    """``value`` with every string in it redacted by shape (dicts and lists walked)."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {key: _redact_detail(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_redact_detail(item) for item in value]
    return value


def audit_log_upstream(
    *,
    organization: Organization,
    project: Project | None,
    occurred_at,
    action: str,
    actor_label: str,
    detail: dict[str, Any],
) -> AuditEvent:
    """An event that happened at OpenAI (its audit log), dated when it happened there and
    marked ``"upstream": "openai"``; the actor is OpenAI's (an e-mail or a key id), never a
    console user. Redacted like every other row."""
    return AuditEvent.objects.create(
        occurred_at=occurred_at,
        organization=organization,
        project=project,
        actor=None,
        actor_label=str(actor_label)[:150],
        action=action[:64],
        target_type="openai.event",
        target_id=str(detail.get("upstream_event_id") or "")[:64],
        target_label=redact(str(detail.get("type") or ""))[:255],
        ip_address=None,
        detail=_redact_detail({"upstream": "openai", **detail}),
    )
