"""Rotation reminders: which stage a key's rotation has reached, and the scan that writes
each (key, cycle, stage) once with its notifications.

Due date: ``keys.selectors.api_key_rotation_due`` (last rotated or created + the project's
rotation period, or the expiry if sooner). Stages count *calendar days in the
organization's billing timezone* between today and the due date, so a reminder starts at
local midnight whatever the UTC offset or a DST change:

=============  ===================================
days left      stage (the latest one reached)
=============  ===================================
more than 14   none yet
14 … 8         ``14d``
7 … 2          ``7d``
1              ``1d``
0 … -6         ``due`` (on the day, and the week after it)
-7 … -13       ``overdue-1``, then ``overdue-2`` from -14, … (weekly while overdue)
=============  ===================================

Only the current stage is ever sent: a key first seen 3 days before its due date gets
``7d`` (its message says "in 3 days"), never ``14d`` as well; stages passed while nobody
scanned are not sent in bulk. The cycle is the ISO timestamp of the last rotation (or the
creation): rotating starts a new cycle, whose stages are new rows; revoking ends the
cycle (inactive keys get nothing).
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from celery.exceptions import SoftTimeLimitExceeded
from django.db import transaction
from django.db.models import OuterRef, QuerySet, Subquery
from django.urls import NoReverseMatch, reverse
from django.utils import timezone

from orgs.models import Organization
from platformadmin.notifications.services import notifications_enqueue

from .models import APIKey, RotationReminder
from .selectors import api_key_rotates_automatically, api_key_rotation_due

logger = logging.getLogger(__name__)

KIND = "key.rotation"
# (stage, the most days left at which it starts), latest stage first.
BEFORE_STAGES: tuple[tuple[str, int], ...] = (
    (RotationReminder.Stage.DUE, 0),
    (RotationReminder.Stage.DAYS_1, 1),
    (RotationReminder.Stage.DAYS_7, 7),
    (RotationReminder.Stage.DAYS_14, 14),
)
FIRST_REMINDER_DAYS = 14
OVERDUE_EVERY_DAYS = 7
_LOOKUP_BATCH = 500  # keys per query when reading the reminders already written


def organization_zone(organization: Organization) -> ZoneInfo:
    """The organization's billing timezone (UTC if unknown to this system's tz database);
    the same rule as usage.selectors.billing_zone, which keys may not import."""
    try:
        return ZoneInfo(organization.billing_timezone or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def rotation_cycle(api_key: APIKey) -> str:
    """The key's rotation cycle: when it was last rotated (or created), ISO 8601 in UTC."""
    return api_key.rotated_or_created_at.astimezone(dt.UTC).isoformat()


def stage_for_days_left(days_left: int) -> str | None:
    """The latest stage reached with ``days_left`` calendar days to the due date (negative
    when overdue); None while more than 14 days are left."""
    if days_left < 0:
        weeks = -days_left // OVERDUE_EVERY_DAYS
        return f"overdue-{weeks}" if weeks else str(RotationReminder.Stage.DUE)
    for stage, starts_at in BEFORE_STAGES:
        if days_left <= starts_at:
            return str(stage)
    return None


def stage_label(stage: str | None) -> str:
    if not stage:
        return ""
    if stage.startswith("overdue-"):
        weeks = stage.removeprefix("overdue-")
        return f"overdue, week {weeks}"
    return str(RotationReminder.Stage(stage).label)


@dataclass(frozen=True)
class RotationStage:
    """Where a key's rotation stands at ``now``."""

    due_at: dt.datetime
    cycle: str
    days_left: int  # calendar days in the billing timezone; negative when overdue
    stage: str | None  # None: no reminder yet (more than 14 days left)
    overdue: bool  # the due moment has passed
    zone: ZoneInfo
    by_expiry: bool  # the expiry, not the rotation period, sets the due date

    @property
    def due_local(self) -> dt.datetime:
        return self.due_at.astimezone(self.zone)

    @property
    def label(self) -> str:
        return stage_label(self.stage)

    @property
    def when(self) -> str:
        """ "in 3 days", "tomorrow", "today", "2 days ago"."""
        if self.days_left > 1:
            return f"in {self.days_left} days"
        if self.days_left == 1:
            return "tomorrow"
        if self.days_left == 0:
            return "today"
        if self.days_left == -1:
            return "1 day ago"
        return f"{-self.days_left} days ago"


def api_key_rotation_stage(*, api_key: APIKey, now: dt.datetime) -> RotationStage | None:
    """The key's due date, cycle and current stage; None for an inactive key (revoking ends
    the cycle) or one with no due date. Reads ``api_key.organization`` and
    ``api_key.project``: load them with select_related."""
    if not api_key.is_active:
        return None
    due_at = api_key_rotation_due(api_key=api_key)
    if due_at is None:
        return None
    zone = organization_zone(api_key.organization)
    days_left = (due_at.astimezone(zone).date() - now.astimezone(zone).date()).days
    return RotationStage(
        due_at=due_at,
        cycle=rotation_cycle(api_key),
        days_left=days_left,
        stage=stage_for_days_left(days_left),
        overdue=due_at <= now,
        zone=zone,
        by_expiry=api_key.expires_at is not None and due_at == api_key.expires_at,
    )


def _key_path(api_key: APIKey) -> str:
    try:
        return reverse("keys:key-detail", kwargs={"key_id": api_key.public_id})
    except NoReverseMatch:  # the key pages are mounted by platformadmin/urls.py
        return ""


def _message(api_key: APIKey, status: RotationStage) -> tuple[str, str, dict]:
    """Title, body and payload of a reminder. The hint only: never the secret."""
    due_text = f"{status.due_local:%Y-%m-%d %H:%M %Z} ({status.zone.key})"
    where = f"project {api_key.project.name}" if api_key.project_id else "the organization"
    if status.overdue:
        title = f"Key {api_key.name} ({api_key.hint}) is overdue for rotation"
        state = f"was due on {due_text}, {status.when}"
    else:
        title = f"Key {api_key.name} ({api_key.hint}) is due for rotation {status.when}"
        state = f"is due for rotation on {due_text}, {status.when}"
    if status.by_expiry:
        reason = "It expires then, before its rotation period ends."
    else:
        reason = (
            f"Its project rotates keys every {api_key.project.rotation_period_days} days; "
            f"it was last rotated (or created) on "
            f"{api_key.rotated_or_created_at.astimezone(status.zone):%Y-%m-%d}."
        )
    body = (
        f'The API key "{api_key.name}" ({api_key.hint}) of {where} in {api_key.organization.name} '
        f"{state}. {reason}\n\n"
        "What to do: create a replacement key at OpenAI, store it with Rotate on the key's page "
        "in the console (callers using the console pick it up at once), then revoke the old "
        "key at OpenAI. If the key is no longer used, revoke it in the console. Reminders for "
        "this key stop once it is rotated or revoked."
    )
    payload = {
        "key": {
            "id": str(api_key.public_id),
            "name": api_key.name,
            "hint": api_key.hint,
            "kind": api_key.kind,
            "path": _key_path(api_key),
        },
        "project": (
            {"id": str(api_key.project.public_id), "name": api_key.project.name}
            if api_key.project_id
            else None
        ),
        "due_at": status.due_at.astimezone(dt.UTC).isoformat(),
        "due_local": status.due_local.isoformat(),
        "timezone": status.zone.key,
        "days_left": status.days_left,
        "overdue": status.overdue,
        "due_by": "expiry" if status.by_expiry else "rotation period",
        "stage": status.stage,
        "cycle": status.cycle,
    }
    return title, body, payload


@dataclass
class ScanReport:
    checked: int = 0  # active keys looked at
    sent: int = 0  # reminders written (each with its notifications)
    failed: int = 0  # keys whose reminder could not be written (retried next scan)


class RotationScanError(RuntimeError):
    """Some keys' reminders could not be written; the others were. Raised after the whole
    scan so the task shows as failed (and its log names the keys) instead of going silent."""


def _candidate_keys() -> list[APIKey]:
    """Every active key with what its due date and message need, in one query."""
    return list(
        APIKey.objects.filter(status=APIKey.Status.ACTIVE)
        .select_related("organization", "project", "service_account")
        .defer("secret")  # the ciphertext is not needed here: it stays unread
    )


def _written(pairs: list[tuple[APIKey, RotationStage]]) -> set[tuple[int, str, str]]:
    """(key id, cycle, stage) of the reminders already written for these keys."""
    found: set[tuple[int, str, str]] = set()
    ids = sorted({key.pk for key, _ in pairs})
    for start in range(0, len(ids), _LOOKUP_BATCH):
        found.update(
            RotationReminder.objects.filter(
                api_key_id__in=ids[start : start + _LOOKUP_BATCH]
            ).values_list("api_key_id", "cycle", "stage")
        )
    return found


def _remind(api_key: APIKey, status: RotationStage, *, now: dt.datetime) -> bool:
    """Write the reminder row and, only when this call wrote it, its notifications: one
    transaction, so a failed enqueue leaves no row and the next scan tries again."""
    with transaction.atomic():
        # Race: the key may have been rotated or revoked since the scan read it. Locking its
        # row waits for such a change to commit and reads the key as it now is, so a stale
        # cycle is never reminded. (SQLite has no row locks; its writes are serialised.)
        fresh = (
            APIKey.objects.select_for_update(of=("self",))
            .select_related("organization", "project")
            .defer("secret")
            .filter(pk=api_key.pk)
            .first()
        )
        current = fresh and api_key_rotation_stage(api_key=fresh, now=now)
        if not current or (current.cycle, current.stage) != (status.cycle, status.stage):
            return False
        # Race: two beats (or a beat and a manual run) may scan the same instant. The unique
        # constraint on (key, cycle, stage) lets exactly one insert win; the loser's
        # get_or_create finds the winner's row (created=False) and enqueues nothing.
        _, created = RotationReminder.objects.get_or_create(
            api_key=fresh,
            cycle=current.cycle,
            stage=current.stage,
            defaults={"due_at": current.due_at},
        )
        if created:
            title, body, payload = _message(fresh, current)
            notifications_enqueue(
                organization=fresh.organization,
                kind=KIND,
                subject=f"key:{fresh.public_id}",
                period=current.cycle,
                stage=current.stage,
                title=title,
                body=body,
                payload=payload,
                project=fresh.project,
            )
        return created


def rotation_reminders_scan(*, now: dt.datetime | None = None) -> ScanReport:
    """Send the current stage of every active key that has not had it yet in this cycle.

    Idempotent: a second scan of the same instant (a second beat, a retried task) finds
    every row written and sends nothing. Reads are two queries whatever the number of keys
    (the keys with their organization and project; the reminders already written); each
    new reminder then takes its own short transaction.
    """
    now = now or timezone.now()
    report = ScanReport()
    pairs = []
    for api_key in _candidate_keys():
        report.checked += 1
        if api_key_rotates_automatically(api_key=api_key):
            continue  # the sync rotates it when due (sync.rotations_tick): nothing to remind
        status = api_key_rotation_stage(api_key=api_key, now=now)
        if status is not None and status.stage is not None:
            pairs.append((api_key, status))
    written = _written(pairs) if pairs else set()
    failures: list[str] = []
    for api_key, status in pairs:
        if (api_key.pk, status.cycle, status.stage) in written:
            continue
        try:
            if _remind(api_key, status, now=now):
                report.sent += 1
        except SoftTimeLimitExceeded:
            raise  # the task's time is up: stop here; the next scan carries on
        # One key's failure must not hold back the others' reminders. Nothing is hidden:
        # its transaction rolled back (no row, so the next scan retries it), it is logged
        # with the traceback here, and the scan raises RotationScanError at the end.
        except Exception:
            report.failed += 1
            failures.append(str(api_key.public_id))
            logger.exception(
                "Rotation reminder for key %s (stage %s) not written; retried next scan",
                api_key.public_id,
                status.stage,
            )
    if failures:
        raise RotationScanError(
            f"{len(failures)} rotation reminder(s) could not be written "
            f"(keys {', '.join(failures[:10])}); {report.sent} sent. See the log."
        )
    return report


@dataclass(frozen=True)
class RotationRow:
    """One line of the Rotation page."""

    api_key: APIKey
    status: RotationStage | None  # None: no due date (an admin key without an expiry)
    last_stage: str | None  # the last reminder sent in the current cycle
    last_sent_at: dt.datetime | None

    @property
    def last_label(self) -> str:
        return stage_label(self.last_stage)

    @property
    def tone(self) -> str:
        """The badge: fail when overdue, warn within 14 days, pass otherwise."""
        if self.status is None:
            return "neutral"
        if self.status.overdue:
            return "fail"
        return "warn" if self.status.days_left <= FIRST_REMINDER_DAYS else "pass"


def rotation_schedule(*, api_keys: QuerySet[APIKey], now: dt.datetime) -> list[RotationRow]:
    """The active keys among ``api_keys`` (already scoped to what the viewer may see), by
    due date, each with its stage and the last reminder of its current cycle. One query:
    the last reminder comes as subqueries, whatever the number of keys."""
    last = RotationReminder.objects.filter(api_key=OuterRef("pk")).order_by("-created_at", "-pk")
    found = (
        api_keys.filter(status=APIKey.Status.ACTIVE)
        .select_related("organization", "project")
        .annotate(
            last_reminder_stage=Subquery(last.values("stage")[:1]),
            last_reminder_cycle=Subquery(last.values("cycle")[:1]),
            last_reminder_at=Subquery(last.values("created_at")[:1]),
        )
    )
    rows = []
    for api_key in found:
        status = api_key_rotation_stage(api_key=api_key, now=now)
        this_cycle = api_key.last_reminder_cycle == rotation_cycle(api_key)
        rows.append(
            RotationRow(
                api_key=api_key,
                status=status,
                last_stage=api_key.last_reminder_stage if this_cycle else None,
                last_sent_at=api_key.last_reminder_at if this_cycle else None,
            )
        )
    far = dt.datetime.max.replace(tzinfo=dt.UTC)
    rows.sort(key=lambda r: (r.status.due_at if r.status else far, r.api_key.name))
    return rows
