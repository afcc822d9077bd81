"""Automated rotation of service-account keys through OpenAI's Admin API (docs/sync.md,
"Rotation").

A rotation is a ``KeyRotation`` row that moves through recorded steps, like AWS Secrets
Manager's pending / current / previous:

  started  -> create a new key for the service account upstream, named
              ``pending_key_name`` (no SDK retries); its OpenAI id is written at once
  created  -> store it, sealed (the value is shown once); not current yet
  stored   -> verify it: ``GET /models`` with the new key (the real SDK, the console's
              listing)
  verified -> promote: the new key becomes the account's current (active) key and the
              previous one stops being current, in one transaction; grace period begins
  promoted -> after the project's grace period, delete the previous key upstream
  done

Each step is committed before the next begins, and each is idempotent, so a crash (a
killed worker: tasks are acks_late) resumes from the recorded step. The one case that
cannot resume is a new key whose value was never stored here (the create's reply was lost
to a timeout or a crash between ``created`` and ``stored``): OpenAI never shows a value
again, so that key is useless; it is found by its unique name (or id), deleted upstream,
and the create is sent again. At most one new key exists upstream at any time, and a
service account's current key is always exactly one (keys/services.py: "current" means
status active).
"""

from __future__ import annotations

import copy
import datetime as dt
import logging
import uuid
from dataclasses import dataclass

from celery import shared_task
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables

from keys.models import APIKey
from keys.selectors import (
    api_key_rotates_automatically,
    api_key_rotation_due,
    organization_admin_key,
)
from keys.services import (
    api_key_rotation_promote,
    api_key_rotation_retire,
    api_key_store_rotation_pending,
)
from orgs.audit import audit_log
from platformadmin.notifications.kinds import KEY_ROTATION_FAILED
from platformadmin.notifications.services import notifications_enqueue
from platformadmin.openai.admin import AdminAPIError, admin_call, admin_list
from platformadmin.openai.listing import models_list
from platformadmin.redaction import redact

from .models import KeyRotation

logger = logging.getLogger(__name__)

Step = KeyRotation.Step
OPEN_STEPS = [Step.STARTED, Step.CREATED, Step.STORED, Step.VERIFIED, Step.PROMOTED]
# Failed attempts of one step before the rotation is marked failed (and notified). The
# tick retries every 10 minutes, so this is about 40 minutes of upstream trouble.
MAX_ATTEMPTS = 5
LOCK_SECONDS = 300  # longer than the task's hard time limit


class RotationRefused(ValidationError):
    """This key cannot be rotated automatically (the message names the fix)."""


@dataclass
class _Held:
    """The new key's value between the create's reply and its storage (memory only)."""

    secret: str = ""


# --- starting ---------------------------------------------------------------------------


def rotation_refusal(*, api_key: APIKey) -> str | None:
    """Why this key cannot be rotated through the Admin API, or None."""
    if api_key.kind != APIKey.Kind.SERVICE_ACCOUNT:
        return "Only service-account keys are rotated through OpenAI's Admin API."
    if not api_key.is_active:
        return f"This key is {api_key.get_status_display().lower()}: only a current key rotates."
    if not api_key.openai_key_id or not api_key.secret_stored:
        return "This key is not linked to OpenAI: run a pull (Sync) first."
    account = api_key.service_account
    if account is None or not account.openai_id or account.deleted_upstream_at:
        return "The key's service account is not linked to OpenAI: run a pull (Sync) first."
    if not api_key.project.openai_project_id:
        return "The project is not linked to an OpenAI project: run a pull (Sync) first."
    if organization_admin_key(organization=api_key.organization) is None:
        return "Store the organization's admin key (sk-admin-…) on the organization page first."
    return None


def rotation_start(*, api_key: APIKey, actor=None, request=None) -> KeyRotation:
    """Open a rotation of ``api_key`` (by hand when ``actor`` is given, else the policy)
    and queue its first steps after commit. One open rotation per service account (the
    partial unique constraint): a second start is refused with a clear message."""
    refusal = rotation_refusal(api_key=api_key)
    if refusal:
        raise RotationRefused({"api_key": refusal})
    public_id = uuid.uuid4()
    try:
        with transaction.atomic():
            rotation = KeyRotation.objects.create(
                public_id=public_id,
                organization=api_key.organization,
                project=api_key.project,
                service_account=api_key.service_account,
                previous_key=api_key,
                pending_key_name=f"console-rotation-{public_id}",
                started_by=actor if getattr(actor, "is_authenticated", False) else None,
            )
            audit_log(
                action="key.rotation_start",
                actor=actor,
                organization=api_key.organization,
                project=api_key.project,
                target=api_key,
                request=request,
                detail={
                    "hint": api_key.hint,
                    "rotation": str(public_id),
                    "automated": actor is None,
                    "upstream": True,
                },
            )
            transaction.on_commit(lambda: rotation_advance_task.delay(rotation.pk))
    except IntegrityError as exc:  # the partial unique constraint: one open rotation
        raise RotationRefused(
            {"api_key": "A rotation of this service account is already running; see Rotations."}
        ) from exc
    return rotation


# --- advancing --------------------------------------------------------------------------


def _record(rotation: KeyRotation, **fields) -> None:
    """Commit the step (and what it learnt) before the next one begins."""
    for name, value in fields.items():
        setattr(rotation, name, value)
    rotation.save(update_fields=[*fields, "updated_at"])


def _project_keys(admin_key, rotation: KeyRotation) -> list:
    project_id = rotation.project.openai_project_id
    return admin_list(
        admin_key,
        "list the project's API keys",
        lambda api: api.projects.api_keys.list(project_id, limit=100, owner_project_access="any"),
    )


def _delete_upstream(admin_key, rotation: KeyRotation, key_id: str) -> None:
    """Delete a key at OpenAI; already gone (404) counts as deleted (idempotent)."""
    project_id = rotation.project.openai_project_id
    try:
        admin_call(
            admin_key,
            "delete an API key",
            lambda api: api.projects.api_keys.delete(key_id, project_id=project_id),
        )
    except AdminAPIError as exc:
        if exc.status != 404:
            raise


def _discard_unstored(admin_key, rotation: KeyRotation) -> None:
    """New keys of this rotation whose value never reached the console (a lost reply, a
    crash before ``stored``): useless, since OpenAI never shows a value twice. Delete them
    upstream, found by id and by the rotation's unique name, so the create can be sent
    again without ever leaving two new keys."""
    ids = {rotation.pending_openai_key_id} - {""}
    ids |= {k.id for k in _project_keys(admin_key, rotation) if k.name == rotation.pending_key_name}
    for key_id in sorted(ids):
        _delete_upstream(admin_key, rotation, key_id)


@sensitive_variables("held")
def _step_create(admin_key, rotation: KeyRotation, held: _Held) -> None:
    _discard_unstored(admin_key, rotation)  # leftovers of a crashed attempt, if any
    _record(rotation, pending_openai_key_id="")
    account_id = rotation.service_account.openai_id
    project_id = rotation.project.openai_project_id
    try:
        created = admin_call(
            admin_key,
            "create a key for the service account",
            lambda api: api.projects.service_accounts.api_keys.create(
                account_id, project_id=project_id, name=rotation.pending_key_name
            ),
            create=True,  # never retried by the SDK: a retry could make a second key
        )
    except AdminAPIError:
        # The key may exist anyway (a reply that came too late): find it by its name and
        # delete it now, so the retry of this step creates the only new key.
        _discard_unstored(admin_key, rotation)
        raise
    held.secret = created.value  # plaintext: only until the next step seals it
    _record(rotation, pending_openai_key_id=created.id, step=Step.CREATED, attempts=0)


@sensitive_variables("held")
def _step_store(admin_key, rotation: KeyRotation, held: _Held) -> None:
    if not held.secret:
        # Resumed after a crash between the reply and its storage: the value is lost.
        _discard_unstored(admin_key, rotation)
        _record(rotation, pending_openai_key_id="", step=Step.STARTED)
        return
    with transaction.atomic():
        pending = api_key_store_rotation_pending(
            previous=rotation.previous_key,
            secret=held.secret,  # plaintext crosses into ciphertext here
            openai_key_id=rotation.pending_openai_key_id,
        )
        _record(rotation, pending_key=pending, step=Step.STORED, attempts=0)
    held.secret = ""


def _step_verify(rotation: KeyRotation) -> None:
    # The new key is not current yet (not active), and the listing tests active keys
    # only: test an in-memory copy marked active. Nothing is saved from the copy.
    probe = copy.copy(rotation.pending_key)
    probe.status = APIKey.Status.ACTIVE
    result = models_list(api_key=probe)
    if not result.ok:
        raise AdminAPIError(f"The new key did not work: {result.message}")
    _record(rotation, step=Step.VERIFIED, attempts=0)


def _step_promote(rotation: KeyRotation, *, now: dt.datetime) -> None:
    grace_until = now + dt.timedelta(hours=rotation.project.rotation_grace_hours)
    with transaction.atomic():  # the key swap and the step commit together
        api_key_rotation_promote(
            previous=rotation.previous_key,
            pending=rotation.pending_key,
            grace_until=grace_until,
            now=now,
        )
        _record(rotation, step=Step.PROMOTED, grace_until=grace_until, attempts=0)


def _step_finish(admin_key, rotation: KeyRotation, *, now: dt.datetime) -> bool:
    if rotation.grace_until and now < rotation.grace_until:
        return False  # still in the grace period: applications are redeploying
    _delete_upstream(admin_key, rotation, rotation.previous_key.openai_key_id)
    with transaction.atomic():
        api_key_rotation_retire(
            api_key=rotation.previous_key,
            reason="deleted at OpenAI by the automated rotation after its grace period",
            now=now,
        )
        _record(rotation, step=Step.DONE, finished_at=now, attempts=0, last_error="")
    return True


def _fail(admin_key, rotation: KeyRotation, message: str, *, now: dt.datetime) -> None:
    """Give up: before promotion the new key is abandoned (deleted upstream, the previous
    key stays current); after it, the new key stays current and the previous key is left
    for a person to delete. Either way, one current key, and a notification."""
    cleanup = ""
    if admin_key is not None and rotation.step in (
        Step.STARTED,
        Step.CREATED,
        Step.STORED,
        Step.VERIFIED,
    ):
        try:
            _discard_unstored(admin_key, rotation)
            if rotation.pending_key is not None:
                api_key_rotation_retire(
                    api_key=rotation.pending_key,
                    reason="new key of a failed rotation, deleted at OpenAI",
                    now=now,
                )
        except AdminAPIError as exc:
            cleanup = f" The new key could not be deleted at OpenAI ({exc}); delete it there."
    failed_at = rotation.step
    with transaction.atomic():
        _record(
            rotation,
            step=Step.FAILED,
            last_error=redact(f"{message}{cleanup}")[:2000],
            finished_at=now,
        )
        notifications_enqueue(**_failure_notice(rotation, failed_at=failed_at))


def _failure_notice(rotation: KeyRotation, *, failed_at: str) -> dict:
    key = rotation.previous_key
    current = key if failed_at != Step.PROMOTED else rotation.pending_key
    body = (
        f"The automated rotation of the key {key.hint} of the service account "
        f"{rotation.service_account.name} (project {rotation.project.name}) failed at the step "
        f"'{Step(failed_at).label}': {rotation.last_error}\n"
        f"The current key is {current.hint}; applications keep working with it. "
        "Start the rotation again from the Rotations page once the cause is fixed."
    )
    return {
        "organization": rotation.organization,
        "project": rotation.project,
        "kind": KEY_ROTATION_FAILED,
        "subject": f"rotation:{rotation.public_id}",
        "period": f"{rotation.created_at:%Y-%m-%d}",
        "stage": "failed",
        "title": f"Key rotation failed: {key.name} ({rotation.project.name})",
        "body": body,
        "payload": {
            "rotation": str(rotation.public_id),
            "step": failed_at,
            "key_hint": key.hint,
            "current_key_hint": current.hint,
            "project": rotation.project.name,
        },
    }


@sensitive_variables("held")
def rotation_advance(
    *, rotation_id: int, now: dt.datetime | None = None, stop_after: str | None = None
) -> KeyRotation | None:
    """Run the rotation's steps from the recorded one until it waits (grace), is done or
    failed. ``stop_after`` (a step) stops once that step is recorded: what a crash there
    leaves (tests resume from it with a fresh call). Returns the row, or None when
    another worker holds the rotation (it is advancing it)."""
    lock = f"sync:rotation:{rotation_id}"
    # Two workers on one rotation (a tick and a retried task) could both send the create:
    # one at a time, through the shared cache (Redis in production).
    if not cache.add(lock, 1, timeout=LOCK_SECONDS):
        return None
    try:
        return _advance(rotation_id, now=now, stop_after=stop_after)
    finally:
        cache.delete(lock)


def _advance(rotation_id: int, *, now, stop_after) -> KeyRotation | None:
    rotation = (
        KeyRotation.objects.select_related(
            "organization", "project", "service_account", "previous_key", "pending_key"
        )
        .filter(pk=rotation_id)
        .first()
    )
    if rotation is None or rotation.step not in OPEN_STEPS:
        return rotation
    admin_key = organization_admin_key(organization=rotation.organization)
    held = _Held()
    for _ in range(12):  # six steps, and one go back from created to started
        now_ = now or timezone.now()
        step = rotation.step
        try:
            if admin_key is None:
                raise AdminAPIError(
                    "The organization has no admin key: store one on the organization page."
                )
            if step == Step.STARTED:
                _step_create(admin_key, rotation, held)
            elif step == Step.CREATED:
                _step_store(admin_key, rotation, held)
            elif step == Step.STORED:
                _step_verify(rotation)
            elif step == Step.VERIFIED:
                _step_promote(rotation, now=now_)
            elif step == Step.PROMOTED:
                if not _step_finish(admin_key, rotation, now=now_):
                    return rotation
            else:
                return rotation
        except (AdminAPIError, ValidationError) as exc:
            message = "; ".join(exc.messages) if isinstance(exc, ValidationError) else str(exc)
            attempts = rotation.attempts + 1
            if attempts >= MAX_ATTEMPTS:
                _fail(admin_key, rotation, message, now=now_)
            else:
                _record(rotation, attempts=attempts, last_error=redact(message)[:2000])
            logger.warning("Rotation %s: step %s failed: %s", rotation.public_id, step, message)
            return rotation
        if stop_after is not None and rotation.step == stop_after:
            return rotation
        if rotation.step == Step.DONE:
            return rotation
    return rotation


# --- the policy -------------------------------------------------------------------------


def rotations_open() -> list[int]:
    """Ids of the rotations not done nor failed (the tick resumes or finishes them)."""
    return list(
        KeyRotation.objects.filter(step__in=OPEN_STEPS).order_by("pk").values_list("pk", flat=True)
    )


def rotations_due_keys(*, now: dt.datetime) -> list[APIKey]:
    """Current service-account keys of projects that rotate automatically, due now, with
    no open rotation of their account."""
    busy = KeyRotation.objects.filter(step__in=OPEN_STEPS).values("service_account_id")
    candidates = (
        APIKey.objects.filter(
            status=APIKey.Status.ACTIVE,
            kind=APIKey.Kind.SERVICE_ACCOUNT,
            project__auto_rotate_service_account_keys=True,
        )
        .exclude(service_account_id__in=busy)
        .select_related("organization", "project", "service_account")
        .defer("secret")
    )
    return [
        key
        for key in candidates
        if api_key_rotates_automatically(api_key=key)
        and (due := api_key_rotation_due(api_key=key)) is not None
        and due <= now
    ]


def rotations_tick(*, now: dt.datetime | None = None) -> dict:
    """Every 10 minutes: advance the open rotations (resumes, grace expiries), then start
    rotations of due keys. Returns counts."""
    now = now or timezone.now()
    advanced = 0
    for rotation_id in rotations_open():
        if rotation_advance(rotation_id=rotation_id, now=now) is not None:
            advanced += 1
    started = 0
    for api_key in rotations_due_keys(now=now):
        if organization_admin_key(organization=api_key.organization) is None:
            continue
        try:
            rotation_start(api_key=api_key)
        except RotationRefused as exc:
            logger.warning("Automated rotation of key %s not started: %s", api_key.public_id, exc)
            continue
        started += 1
    return {"advanced": advanced, "started": started}


def rotations_for_organization(*, organization, project=None) -> QuerySet[KeyRotation]:
    """The organization's rotations, newest first, with what the page shows (one query)."""
    rows = KeyRotation.objects.filter(organization=organization).select_related(
        "project", "service_account", "previous_key", "pending_key", "started_by"
    )
    if project is not None:
        rows = rows.filter(project=project)
    return rows


def rotatable_keys(*, organization) -> list[APIKey]:
    """Current service-account keys that a rotation can be started for (the page's form)."""
    keys = (
        APIKey.objects.filter(
            organization=organization,
            status=APIKey.Status.ACTIVE,
            kind=APIKey.Kind.SERVICE_ACCOUNT,
        )
        .select_related("organization", "project", "service_account")
        .defer("secret")
        .order_by("project__name", "name", "pk")
    )
    has_admin = organization_admin_key(organization=organization) is not None
    return [
        k
        for k in keys
        if has_admin
        and k.openai_key_id
        and k.secret_stored
        and k.project.openai_project_id
        and k.service_account
        and k.service_account.openai_id
    ]


# --- tasks ------------------------------------------------------------------------------


@shared_task(
    name="sync.rotation_advance",
    acks_late=True,
    reject_on_worker_lost=True,
    soft_time_limit=240,
    time_limit=280,
)
def rotation_advance_task(rotation_id: int) -> str | None:
    """Run one rotation's steps (idempotent by the recorded step: a redelivered task
    resumes where the killed one stopped)."""
    rotation = rotation_advance(rotation_id=rotation_id)
    return rotation.step if rotation is not None else None


@shared_task(
    name="sync.rotations_tick",
    acks_late=True,
    reject_on_worker_lost=True,
    soft_time_limit=500,
    time_limit=560,
)
def rotations_tick_task() -> dict:
    """Every 10 minutes (CELERY_BEAT_SCHEDULE): the rotation policy."""
    return rotations_tick()
