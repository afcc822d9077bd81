"""Reads on API keys for the console pages (scoped through orgs/access.py)."""

from __future__ import annotations

import datetime as dt

from django.db.models import QuerySet
from django.utils import timezone

from orgs.models import Project

from .models import APIKey, APIKeyEvent


def project_keys(*, project: Project) -> QuerySet[APIKey]:
    """Keys of one project, active first; revoked keys stay listed for the record."""
    return (
        APIKey.objects.filter(project=project)
        .select_related("service_account")
        .order_by("status", "-created_at")
    )


def api_keys_by_id(*, key_ids) -> dict[int, APIKey]:
    """Keys by id in one query, for the names and hints of a usage table's rows (the
    caller's ids come from rows already scoped by orgs.access; only display fields load,
    never the sealed secret)."""
    return {
        key.pk: key
        for key in APIKey.objects.filter(pk__in=list(key_ids)).only(
            "pk", "public_id", "name", "hint", "project_id", "status"
        )
    }


def usable_keys(*, project: Project) -> list[APIKey]:
    """The keys a call may use: active, not admin keys, with their secret stored (a key
    known only from OpenAI's listing cannot be called), by name (the sealed secret stays
    sealed: it is opened only at call time)."""
    return list(
        APIKey.objects.filter(project=project, status=APIKey.Status.ACTIVE, secret_stored=True)
        .exclude(kind=APIKey.Kind.ADMIN)
        .order_by("name")
    )


def api_key_rotation_due(*, api_key: APIKey) -> dt.datetime | None:
    """When the key should next be rotated: last rotated (or created) + its project's
    rotation period, or its expiry if that comes sooner. The one rule: the key pages, the
    checklist, the Rotation page and the reminders (keys/reminders.py) all read it here.
    None for a key with neither (an admin key without an expiry)."""
    candidates = []
    if api_key.project_id is not None:
        candidates.append(
            api_key.rotated_or_created_at + dt.timedelta(days=api_key.project.rotation_period_days)
        )
    if api_key.expires_at is not None:
        candidates.append(api_key.expires_at)
    return min(candidates, default=None)


def api_key_is_overdue(*, api_key: APIKey, now: dt.datetime | None = None) -> bool:
    due = api_key_rotation_due(api_key=api_key)
    return bool(due and api_key.is_active and due < (now or timezone.now()))


def api_key_history(*, api_key: APIKey) -> QuerySet[APIKeyEvent]:
    """The key's life, newest first: created, rotated (with the old hint), revealed, …"""
    return APIKeyEvent.objects.filter(api_key=api_key).select_related("actor")


def organization_admin_key(*, organization) -> APIKey | None:
    """The organization's active admin key (the newest, if several were stored), for the
    Admin API sync; None when none is stored."""
    return (
        APIKey.objects.filter(
            organization=organization, kind=APIKey.Kind.ADMIN, status=APIKey.Status.ACTIVE
        )
        .select_related("organization")
        .order_by("-created_at", "-pk")
        .first()
    )


def keys_of_projects(*, project_ids) -> QuerySet[APIKey]:
    """Keys of these projects (already scoped by orgs.access), by project then name, for a
    filter's choices; the sealed secret is not read."""
    return (
        APIKey.objects.filter(project_id__in=project_ids)
        .only("pk", "public_id", "name", "hint", "status", "project_id")
        .order_by("project_id", "name", "pk")
    )


def organizations_with_admin_key() -> list[int]:
    """Ids of the organizations that have an active admin key (the sync's work list)."""
    return list(
        APIKey.objects.filter(kind=APIKey.Kind.ADMIN, status=APIKey.Status.ACTIVE)
        .values_list("organization_id", flat=True)
        .distinct()
        .order_by("organization_id")
    )


def api_key_rotates_automatically(*, api_key: APIKey) -> bool:
    """True for a service-account key the Admin API sync rotates by itself (its project's
    rotation policy is on and the key, its account and project are linked to OpenAI): the
    rotation reminders skip such keys (keys/reminders.py), the sync's tick rotates them."""
    project = api_key.project
    account = api_key.service_account
    return bool(
        api_key.kind == APIKey.Kind.SERVICE_ACCOUNT
        and api_key.secret_stored
        and api_key.openai_key_id
        and project is not None
        and project.auto_rotate_service_account_keys
        and project.openai_project_id
        and account is not None
        and account.openai_id
        and account.deleted_upstream_at is None
    )
