"""Admin API sync: the hierarchy pull (see docs/sync.md).

``hierarchy_pull`` reads OpenAI's projects (archived too), service accounts, project API
keys (``owner_project_access="any"``, so no key is hidden), project users, rate limits,
spend limits and alerts, and brings the console in line, writing through orgs and keys
services. Rules:

- links are by OpenAI id; a console project without one is linked by its exact name only
  when exactly one console project and one OpenAI project carry that name;
- what exists only upstream is imported (a key as "known, secret not stored");
- only fields OpenAI owns are written (a project's status, a key's expiry and last use,
  a not-stored key's hint), and only when they differ: a second pull with nothing
  changed upstream writes no row. A console project keeps its own name once linked
  (an upstream rename is reported); allowed models, caps, budgets are never touched;
- a listing that fails (on any page) fails that part only: nothing is marked deleted
  from a half listing, the error is in the report and the run is partial (failed when
  the projects themselves could not be listed).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime

from celery import shared_task
from django.core.cache import cache
from django.db import transaction
from django.utils import timezone

from keys.models import APIKey
from keys.selectors import organization_admin_key, organizations_with_admin_key, project_keys
from keys.services import (
    api_key_import_upstream,
    api_key_mark_deleted_upstream,
    api_key_matches_redacted,
    api_key_update_upstream,
)
from orgs.models import Project
from orgs.selectors import organization_by_id, organization_projects, project_service_accounts
from orgs.services import (
    project_import_upstream,
    project_update_upstream,
    service_account_import_upstream,
    service_account_update_upstream,
)
from platformadmin.openai.admin import AdminAPIError, admin_call, admin_list

from .models import (
    SyncRun,
    UpstreamProjectUser,
    UpstreamRateLimit,
    UpstreamSpendAlert,
    UpstreamSpendLimit,
)

KINDS = (
    "project",
    "service_account",
    "api_key",
    "project_user",
    "rate_limit",
    "spend_limit",
    "spend_alert",
)
OUTCOMES = ("created", "updated", "deleted_upstream", "unchanged")
MAX_DETAILS = 500  # a report stays readable (and its row small) on a huge organization
LOCK_SECONDS = 900  # longer than the task's time limit: a crashed pull frees it anyway
PAGE = 100  # the Admin API's largest page


def _when(seconds) -> datetime | None:
    return datetime.fromtimestamp(seconds, UTC) if seconds else None


@dataclass
class Report:
    """Counts per kind and outcome, errors (redacted by the client layer) and details."""

    counts: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))
    errors: list[str] = field(default_factory=list)
    details: list[str] = field(default_factory=list)
    dropped: int = 0

    def count(self, kind: str, outcome: str, detail: str | None = None) -> None:
        self.counts[kind][outcome] += 1
        if detail:
            self.note(detail)

    def note(self, detail: str) -> None:
        if len(self.details) < MAX_DETAILS:
            self.details.append(detail)
        else:
            self.dropped += 1

    def as_json(self) -> dict:
        kinds = {k: {o: self.counts[k][o] for o in OUTCOMES} for k in KINDS if k in self.counts}
        totals = {o: sum(c[o] for c in self.counts.values()) for o in OUTCOMES}
        details = list(self.details)
        if self.dropped:
            details.append(f"… and {self.dropped} more.")
        return {**totals, "kinds": kinds, "errors": list(self.errors), "details": details}


class _Part:
    """One listing of a run: its failure is reported and the rest of the run goes on."""

    def __init__(self, admin_key, report: Report):
        self.admin_key, self.report = admin_key, report

    def listing(self, where: str, what: str, func) -> list | None:
        try:
            return admin_list(self.admin_key, f"list {what} of {where}", func)
        except AdminAPIError as exc:
            self.report.errors.append(
                f"{where}: {what} not synced. {exc} Nothing was marked deleted for it."
            )
            return None


# --- projects ------------------------------------------------------------------------


def _status_of(upstream) -> str:
    archived = upstream.archived_at or getattr(upstream, "status", "") == "archived"
    return Project.Status.ARCHIVED if archived else Project.Status.ACTIVE


def _free_name(name: str, openai_id: str, taken: set[str]) -> str:
    name = (name or openai_id).strip()[:200] or openai_id
    if name not in taken:
        return name
    base = f"{name[:170]} (OpenAI {openai_id[-12:]})"
    candidate, n = base, 2
    while candidate in taken:
        candidate, n = f"{base} {n}", n + 1
    return candidate


def _sync_projects(organization, upstream: list, report: Report, actor) -> list[tuple]:
    console = list(organization_projects(organization=organization))
    by_id = {p.openai_project_id: p for p in console if p.openai_project_id}
    unlinked: dict[str, list[Project]] = defaultdict(list)
    for p in console:
        if not p.openai_project_id:
            unlinked[p.name].append(p)
    upstream_names = Counter(u.name for u in upstream)
    taken = {p.name for p in console}
    pairs = []
    for up in upstream:
        status = _status_of(up)
        project = by_id.get(up.id)
        with transaction.atomic():
            if (
                project is None
                and len(unlinked.get(up.name, [])) == 1
                and upstream_names[up.name] == 1
            ):
                project = unlinked.pop(up.name)[0]
                project_update_upstream(
                    project=project,
                    values={"openai_project_id": up.id, "status": status},
                    actor=actor,
                )
                report.count(
                    "project",
                    "updated",
                    f"Project {project.name}: linked to OpenAI project {up.id} by its exact name.",
                )
            elif project is None:
                name = _free_name(up.name, up.id, taken)
                project = project_import_upstream(
                    organization=organization,
                    name=name,
                    openai_project_id=up.id,
                    status=status,
                    actor=actor,
                )
                taken.add(name)
                why = ""
                if name != up.name:
                    why = f" as {name}: the name {up.name} is already taken here"
                    if upstream_names[up.name] > 1:
                        why += " (OpenAI has several projects of that name)"
                report.count(
                    "project",
                    "created",
                    f"Project {up.name} ({up.id}): imported from OpenAI{why}, {status}.",
                )
            else:
                changed = {}
                if project.status != status:
                    changed = project_update_upstream(
                        project=project, values={"status": status}, actor=actor
                    )
                if changed:
                    old, new = changed["status"]
                    report.count("project", "updated", f"Project {project.name}: {old} → {new}.")
                else:
                    report.count("project", "unchanged")
        if up.name != project.name and project.openai_project_id == up.id:
            report.note(
                f"Project {project.name} is named {up.name} at OpenAI; the console keeps its "
                "own name."
            )
        pairs.append((project, up))
    listed = {u.id for u in upstream}
    for p in console:
        if p.openai_project_id and p.openai_project_id not in listed:
            report.note(
                f"Project {p.name}: OpenAI project {p.openai_project_id} is not in OpenAI's "
                "listing (check the admin key's organization); left as it is."
            )
    return pairs


# --- service accounts and keys ---------------------------------------------------------


def _sync_accounts(project: Project, listed: list, report: Report, actor, now) -> dict:
    """Link, import and mark deleted; returns {OpenAI id: console account}."""
    console = list(project_service_accounts(project=project))
    by_id = {a.openai_id: a for a in console if a.openai_id}
    unlinked: dict[str, list] = defaultdict(list)
    for a in console:
        if not a.openai_id:
            unlinked[a.name].append(a)
    names = Counter(u.name for u in listed)
    with transaction.atomic():
        for up in listed:
            account = by_id.get(up.id)
            if account is None and len(unlinked.get(up.name, [])) == 1 and names[up.name] == 1:
                account = unlinked.pop(up.name)[0]
                service_account_update_upstream(
                    account=account, openai_id=up.id, deleted_upstream_at=None, actor=actor
                )
                report.count(
                    "service_account",
                    "updated",
                    f"{project.name}: service account {account.name} linked to {up.id} by name.",
                )
            elif account is None:
                account = service_account_import_upstream(
                    project=project, name=up.name, openai_id=up.id, actor=actor
                )
                report.count(
                    "service_account",
                    "created",
                    f"{project.name}: service account {account.name} imported from OpenAI.",
                )
            elif service_account_update_upstream(
                account=account, deleted_upstream_at=None, actor=actor
            ):
                report.count(
                    "service_account",
                    "updated",
                    f"{project.name}: service account {account.name} is listed at OpenAI again.",
                )
            else:
                report.count("service_account", "unchanged")
            by_id[up.id] = account
        listed_ids = {u.id for u in listed}
        for account in console:
            if account.openai_id and account.openai_id not in listed_ids:
                if account.deleted_upstream_at is None:
                    service_account_update_upstream(
                        account=account, deleted_upstream_at=now, actor=actor
                    )
                    report.count(
                        "service_account",
                        "deleted_upstream",
                        f"{project.name}: service account {account.name} was deleted at OpenAI.",
                    )
                else:
                    report.count("service_account", "unchanged")
    return by_id


def _owner_account(up, project, accounts: dict, report: Report, actor):
    owner = up.owner
    if getattr(owner, "type", None) != "service_account" or owner.service_account is None:
        return None
    sa = owner.service_account
    if sa.id not in accounts:  # listed by its key only: import it from the owner's fields
        accounts[sa.id] = service_account_import_upstream(
            project=project, name=sa.name, openai_id=sa.id, actor=actor
        )
        report.count(
            "service_account",
            "created",
            f"{project.name}: service account {sa.name} imported (owner of key {up.name}).",
        )
    return accounts[sa.id]


def _sync_keys(project: Project, listed: list, accounts: dict, report: Report, actor, now):
    console = [k for k in project_keys(project=project) if k.kind != APIKey.Kind.ADMIN]
    by_id = {k.openai_key_id: k for k in console if k.openai_key_id}
    unlinked = [k for k in console if not k.openai_key_id and k.secret_stored]
    with transaction.atomic():
        for up in listed:
            account = _owner_account(up, project, accounts, report, actor)
            expires, last_used = _when(up.expires_at), _when(up.last_used_at)
            api_key = by_id.get(up.id)
            if api_key is None:
                # A key stored here (pasted) before it was linked: find it by its value.
                matches = [
                    k
                    for k in unlinked
                    if api_key_matches_redacted(api_key=k, redacted_value=up.redacted_value)
                ]
                if len(matches) == 1:
                    api_key = matches[0]
                    unlinked.remove(api_key)
            if api_key is None:
                api_key = api_key_import_upstream(
                    organization=project.organization,
                    project=project,
                    name=up.name or "",
                    openai_key_id=up.id,
                    redacted_value=up.redacted_value or "",
                    kind=APIKey.Kind.SERVICE_ACCOUNT if account else APIKey.Kind.PROJECT,
                    service_account=account,
                    created_at=_when(up.created_at),
                    last_used_at=last_used,
                    expires_at=expires,
                    actor=actor,
                    now=now,
                )
                report.count(
                    "api_key",
                    "created",
                    f"{project.name}: key {api_key.name} ({api_key.hint}) found at OpenAI; "
                    "known, secret not stored.",
                )
                by_id[up.id] = api_key
                continue
            values = {"openai_key_id": up.id, "expires_at": expires}
            if last_used and (api_key.last_used_at is None or last_used > api_key.last_used_at):
                values["last_used_at"] = last_used  # never moved back: the console saw later
            if not api_key.secret_stored and up.redacted_value:
                values["hint"] = up.redacted_value[:40]
            if account is not None:
                values["service_account_id"] = account.pk
            was_linked = bool(api_key.openai_key_id)
            changed = []
            if any(getattr(api_key, name) != value for name, value in values.items()):
                # Only then: the service's transaction costs a savepoint per key.
                changed = api_key_update_upstream(api_key=api_key, values=values, now=now)
            if not changed:
                report.count("api_key", "unchanged")
            elif not was_linked:
                report.count(
                    "api_key",
                    "updated",
                    f"{project.name}: key {api_key.name} ({api_key.hint}) linked to {up.id}.",
                )
            else:
                report.count(
                    "api_key",
                    "updated",
                    f"{project.name}: key {api_key.name} ({api_key.hint}): {', '.join(changed)}.",
                )
            by_id[up.id] = api_key
        listed_ids = {u.id for u in listed}
        for api_key in console:
            if not api_key.openai_key_id or api_key.openai_key_id in listed_ids:
                continue
            if api_key_mark_deleted_upstream(api_key=api_key, actor=actor, now=now):
                report.count(
                    "api_key",
                    "deleted_upstream",
                    f"{project.name}: key {api_key.name} ({api_key.hint}) was deleted at "
                    "OpenAI; it can no longer be used.",
                )
            else:
                report.count("api_key", "unchanged")


# --- mirrors: users, rate limits, spend limits and alerts (the sync's own tables) ------


def _sync_users(project: Project, listed: list, report: Report, now) -> None:
    existing = {u.openai_user_id: u for u in UpstreamProjectUser.objects.filter(project=project)}
    with transaction.atomic():
        for up in listed:
            values = {
                "email": up.email or "",
                "name": (up.name or "")[:200],
                "role": up.role or "",
                "added_at": _when(up.added_at),
                "deleted_upstream_at": None,
            }
            row = existing.pop(up.id, None)
            if row is None:
                UpstreamProjectUser.objects.create(
                    project=project, openai_user_id=up.id, synced_at=now, **values
                )
                report.count("project_user", "created")
                continue
            changed = [n for n, v in values.items() if getattr(row, n) != v]
            if changed:
                for n in changed:
                    setattr(row, n, values[n])
                row.synced_at = now
                row.save(update_fields=[*changed, "synced_at"])
                report.count(
                    "project_user", "updated", f"{project.name}: user {row.email} changed."
                )
            else:
                report.count("project_user", "unchanged")
        for row in existing.values():  # kept for the record, marked gone
            if row.deleted_upstream_at is None:
                row.deleted_upstream_at = row.synced_at = now
                row.save(update_fields=["deleted_upstream_at", "synced_at"])
                report.count(
                    "project_user",
                    "deleted_upstream",
                    f"{project.name}: user {row.email} removed at OpenAI.",
                )


def _sync_rate_limits(project: Project, listed: list, report: Report, now) -> None:
    rows = {
        rl.id: {
            "model": rl.model,
            "max_requests_per_1_minute": rl.max_requests_per_1_minute,
            "max_tokens_per_1_minute": rl.max_tokens_per_1_minute,
            "max_requests_per_1_day": rl.max_requests_per_1_day,
            "batch_1_day_max_input_tokens": rl.batch_1_day_max_input_tokens,
        }
        for rl in listed
    }
    existing = {r.openai_id: r for r in UpstreamRateLimit.objects.filter(project=project)}
    with transaction.atomic():
        _mirror_synced(
            UpstreamRateLimit,
            rows,
            existing,
            kind="rate_limit",
            report=report,
            create={"project": project},
            key_field="openai_id",
            now=now,
        )


def _mirror_synced(model, rows: dict, existing: dict, *, kind, report, create, key_field, now):
    """Upsert ``rows`` ({key: field values}) over ``existing`` ({key: row}) and delete what
    is no longer listed; a row is written only when one of its values differs."""
    for key, values in rows.items():
        row = existing.pop(key, None)
        if row is None:
            keyed = {key_field: key} if key_field else {}
            model.objects.create(**create, **keyed, synced_at=now, **values)
            report.count(kind, "created")
            continue
        changed = [n for n, v in values.items() if getattr(row, n) != v]
        if changed:
            for n in changed:
                setattr(row, n, values[n])
            row.synced_at = now
            row.save(update_fields=[*changed, "synced_at"])
            report.count(kind, "updated")
        else:
            report.count(kind, "unchanged")
    for row in existing.values():
        row.delete()
        report.count(kind, "deleted_upstream")


def _spend_limit(admin_key, where: str, func, report: Report):
    """The spend limit, None when none is set (404), or ``False`` when the read failed."""
    try:
        return admin_call(admin_key, f"read the spend limit of {where}", func)
    except AdminAPIError as exc:
        if exc.status == 404:
            return None
        report.errors.append(f"{where}: spend limit not synced. {exc}")
        return False


def _sync_spend(organization, project, limit, alerts, report: Report, now) -> None:
    scope = {"organization": organization, "project": project}
    with transaction.atomic():
        if limit is not False:
            existing = UpstreamSpendLimit.objects.filter(**scope).first()
            if limit is None:
                if existing is not None:
                    existing.delete()
                    report.count("spend_limit", "deleted_upstream")
            else:
                values = {
                    "threshold_cents": int(limit.threshold_amount),
                    "enforcement_status": str(
                        getattr(getattr(limit, "enforcement", None), "status", "") or ""
                    ),
                }
                _mirror_synced(
                    UpstreamSpendLimit,
                    {"one": values},
                    {"one": existing} if existing else {},
                    kind="spend_limit",
                    report=report,
                    create={"organization": organization, "project": project},
                    key_field=None,
                    now=now,
                )
        if alerts is not None:
            rows = {
                a.id: {
                    "threshold_cents": int(a.threshold_amount),
                    "recipients": list(getattr(a.notification_channel, "recipients", None) or []),
                }
                for a in alerts
            }
            existing = {a.openai_id: a for a in UpstreamSpendAlert.objects.filter(**scope)}
            _mirror_synced(
                UpstreamSpendAlert,
                rows,
                existing,
                kind="spend_alert",
                report=report,
                create={"organization": organization, "project": project},
                key_field="openai_id",
                now=now,
            )


# --- the run -----------------------------------------------------------------------------


def _pull_project(part: _Part, project: Project, up, report: Report, actor, now) -> None:
    where = f"project {project.name}"
    accounts_listed = part.listing(
        where, "service accounts", lambda api: api.projects.service_accounts.list(up.id, limit=PAGE)
    )
    accounts = None
    if accounts_listed is not None:
        accounts = _sync_accounts(project, accounts_listed, report, actor, now)
    keys = part.listing(
        where,
        "API keys",
        lambda api: api.projects.api_keys.list(up.id, limit=PAGE, owner_project_access="any"),
    )
    if keys is not None and accounts is None:
        report.errors.append(f"{where}: API keys not synced either (their owners are unknown).")
    elif keys is not None:
        _sync_keys(project, keys, accounts, report, actor, now)
    users = part.listing(where, "users", lambda api: api.projects.users.list(up.id, limit=PAGE))
    if users is not None:
        _sync_users(project, users, report, now)
    limits = part.listing(
        where,
        "rate limits",
        lambda api: api.projects.rate_limits.list_rate_limits(up.id, limit=PAGE),
    )
    if limits is not None:
        _sync_rate_limits(project, limits, report, now)
    limit = _spend_limit(
        part.admin_key, where, lambda api: api.projects.spend_limit.retrieve(up.id), report
    )
    alerts = part.listing(
        where, "spend alerts", lambda api: api.projects.spend_alerts.list(up.id, limit=PAGE)
    )
    _sync_spend(project.organization, project, limit, alerts, report, now)


def _finish(run: SyncRun, report: Report, status: str) -> SyncRun:
    run.status = status
    run.report = report.as_json()
    run.finished_at = timezone.now()
    run.save(update_fields=["status", "report", "finished_at"])
    return run


def hierarchy_pull(*, organization, actor=None, now=None) -> SyncRun:
    """Bring the console's projects, service accounts and keys in line with OpenAI's
    (and mirror users, rate limits, spend limits and alerts). Returns the run, whose
    report says what was created, updated, deleted upstream, unchanged, and what failed."""
    now = now or timezone.now()
    person = actor if getattr(actor, "is_authenticated", False) else None
    run = SyncRun.objects.create(
        organization=organization,
        kind=SyncRun.Kind.HIERARCHY,
        started_at=now,
        triggered_by=person,
    )
    report = Report()
    admin_key = organization_admin_key(organization=organization)
    if admin_key is None:
        report.errors.append(
            f"{organization.name} has no admin key: an owner stores one (sk-admin-…) on the "
            "organization's admin key page first."
        )
        return _finish(run, report, SyncRun.Status.FAILED)
    # Two pulls of one organization at once (the hourly beat and a click) would import
    # the same upstream object twice: the second one stops here.
    lock = f"sync:hierarchy-pull:{organization.pk}"
    if not cache.add(lock, run.pk, LOCK_SECONDS):
        report.errors.append("Another pull of this organization is running; try again shortly.")
        return _finish(run, report, SyncRun.Status.FAILED)
    try:
        try:
            upstream = admin_list(
                admin_key,
                "list OpenAI's projects",
                lambda api: api.projects.list(include_archived=True, limit=PAGE),
            )
        except AdminAPIError as exc:
            report.errors.append(f"Projects not synced: {exc}")
            return _finish(run, report, SyncRun.Status.FAILED)
        part = _Part(admin_key, report)
        for project, up in _sync_projects(organization, upstream, report, person):
            _pull_project(part, project, up, report, person, now)
        limit = _spend_limit(
            admin_key, "the organization", lambda api: api.spend_limit.retrieve(), report
        )
        alerts = part.listing(
            "the organization", "spend alerts", lambda api: api.spend_alerts.list(limit=PAGE)
        )
        _sync_spend(organization, None, limit, alerts, report, now)
    finally:
        cache.delete(lock)
    return _finish(
        run, report, SyncRun.Status.PARTIAL if report.errors else SyncRun.Status.SUCCEEDED
    )


def hierarchy_runs(*, organization, limit: int = 50):
    """The organization's recent hierarchy pulls, newest first (the history page)."""
    return SyncRun.objects.filter(
        organization=organization, kind=SyncRun.Kind.HIERARCHY
    ).select_related("triggered_by")[:limit]


@shared_task(
    name="sync.hierarchy_pull",
    acks_late=True,
    reject_on_worker_lost=True,
    soft_time_limit=600,
    time_limit=660,
)
def hierarchy_pull_task(organization_id: int) -> str | None:
    """Pull one organization's hierarchy (idempotent: nothing changes when nothing did)."""
    organization = organization_by_id(organization_id=organization_id)
    if organization is None:
        return None
    return hierarchy_pull(organization=organization).status


@shared_task(
    name="sync.hierarchy_pull_all",
    acks_late=True,
    reject_on_worker_lost=True,
    soft_time_limit=50,
    time_limit=60,
)
def hierarchy_pull_all() -> int:
    """Hourly: one ``sync.hierarchy_pull`` per organization with an admin key."""
    ids = organizations_with_admin_key()
    for organization_id in ids:
        hierarchy_pull_task.delay(organization_id)
    return len(ids)
