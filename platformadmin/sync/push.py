"""Pushes to OpenAI's Admin API, each confirmed by an organization owner and audited.

- create a project upstream and link its id here;
- create a service account upstream: its key comes back once, is stored encrypted at once
  as the project's service-account key, and the page shows it once;
- delete a key upstream once it is revoked here;
- set a project's per-model rate limits;
- a budget upstream: its hard limit becomes the project's (or organization's) OpenAI spend
  limit, its thresholds OpenAI spend alerts e-mailed to the organization's owners.

Every create is sent without SDK retries (the SDK sends no idempotency key) and, on ANY
error (a timeout included), followed by a listing that finds what the create made before
anything is reported: an id that was not there before the create, with the name we sent,
newest first. So a create whose reply came too late leaves exactly one object, linked here.

Upstream calls run outside any transaction (a slow network must not hold row locks); the
console's own writes for one push are one transaction afterwards.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables

from keys.models import APIKey
from keys.selectors import organization_admin_key
from keys.services import api_key_add, api_key_record_upstream_delete
from orgs.audit import audit_log
from orgs.selectors import organization_members
from orgs.services import project_link_upstream, service_account_create
from platformadmin.openai.admin import AdminAPIError, admin_call, admin_list

from .models import UpstreamRateLimit, UpstreamSpendAlert, UpstreamSpendLimit

RATE_LIMIT_FIELDS = (
    "max_requests_per_1_minute",
    "max_tokens_per_1_minute",
    "max_requests_per_1_day",
    "batch_1_day_max_input_tokens",
)
RATE_LIMIT_MAX = 10**12  # well above any limit OpenAI grants; stops absurd input early


class PushRefused(Exception):
    """The push cannot start (no admin key, not linked…); ``str()`` names the fix."""


@dataclass
class PushResult:
    """What a push did, for the page and the audit row."""

    summary: str
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    recovered: bool = False  # the create's reply was lost; the listing found the object


def _admin_key(organization):
    admin_key = organization_admin_key(organization=organization)
    if admin_key is None:
        raise PushRefused(
            f"{organization.name} has no admin key: store one (sk-admin-…) on the organization "
            "page before pushing to OpenAI."
        )
    return admin_key


def _linked(project) -> str:
    if not project.openai_project_id:
        raise PushRefused(
            f"{project.name} is not linked to an OpenAI project: create it upstream first "
            "(or run a pull to link an existing one)."
        )
    return project.openai_project_id


def _audit_push(action: str, *, actor, request, organization, project=None, target=None, detail):
    audit_log(
        action=f"sync.push.{action}",
        actor=actor,
        organization=organization,
        project=project,
        target=target,
        request=request,
        detail={"upstream": "push", **detail},
    )


def create_then_find(
    admin_key,
    *,
    action: str,
    create: Callable,
    listing: Callable,
    name_of: Callable = lambda item: getattr(item, "name", None),
    name: str,
):
    """``(reply, found)``: send ``create`` once (no SDK retries); on any error, list again
    and return the newest object named ``name`` that the listing before did not show
    (``found``; ``reply`` is then None). Nothing found: the create's error is raised."""
    before = {item.id for item in admin_list(admin_key, action, listing)}
    try:
        return admin_call(admin_key, action, create, create=True), None
    except AdminAPIError as error:
        # Race: the create may have happened upstream even though we saw no reply.
        try:
            after = admin_list(admin_key, action, listing)
        except AdminAPIError as listing_error:
            raise AdminAPIError(
                f"{error} Then the listing that checks what was created failed too: "
                f"{listing_error} Run a pull before trying again, so nothing is made twice."
            ) from error
        new = [i for i in after if i.id not in before and name_of(i) == name]
        if not new:
            raise
        return None, max(new, key=lambda i: getattr(i, "created_at", 0) or 0)


# --- projects --------------------------------------------------------------------------


def project_push_create(*, project, actor, request=None) -> PushResult:
    """Create ``project`` at OpenAI and link its id here."""
    if project.openai_project_id:
        raise PushRefused(
            f"{project.name} is already linked to OpenAI project {project.openai_project_id}."
        )
    admin_key = _admin_key(project.organization)
    reply, found = create_then_find(
        admin_key,
        action="create the project at OpenAI",
        create=lambda api: api.projects.create(name=project.name),
        listing=lambda api: api.projects.list(limit=100, include_archived=True),
        name=project.name,
    )
    upstream = reply or found
    with transaction.atomic():
        project_link_upstream(
            project=project, openai_project_id=upstream.id, actor=actor, request=request
        )
        _audit_push(
            "project_create",
            actor=actor,
            request=request,
            organization=project.organization,
            project=project,
            target=project,
            detail={"openai_project_id": upstream.id, "recovered": found is not None},
        )
    return PushResult(
        f"Created {project.name} at OpenAI ({upstream.id}) and linked it.",
        created=[upstream.id],
        recovered=found is not None,
    )


# --- service accounts ------------------------------------------------------------------


@dataclass
class ServiceAccountPush:
    account: object
    api_key: APIKey | None
    secret: str | None  # shown once by the page, never stored in clear
    result: PushResult


def _validate_account_name(project, name: str) -> str:
    name = (name or "").strip()
    if not name:
        raise ValidationError({"name": "Give the service account a name."})
    if len(name) > 200:
        raise ValidationError({"name": "At most 200 characters."})
    return name


@sensitive_variables("secret", "key_reply")
def service_account_push_create(*, project, name: str, actor, request=None) -> ServiceAccountPush:
    """Create a service account at OpenAI, store it here and its key encrypted at once.

    If the create's reply was lost (timeout), the listing finds the account; its key's value
    was in that lost reply, so the keys OpenAI made for it are deleted upstream and one new
    key is issued for it (``service_accounts.api_keys.create``), whose value we do get.
    """
    name = _validate_account_name(project, name)
    project_id = _linked(project)
    admin_key = _admin_key(project.organization)
    action = "create the service account at OpenAI"
    reply, found = create_then_find(
        admin_key,
        action=action,
        create=lambda api: api.projects.service_accounts.create(project_id, name=name),
        listing=lambda api: api.projects.service_accounts.list(project_id, limit=100),
        name=name,
    )
    account_id = (reply or found).id
    secret, key_id, key_name = None, "", "Secret key"
    error = None
    if reply is not None and getattr(reply, "api_key", None) is not None:
        secret, key_id = reply.api_key.value, reply.api_key.id
        key_name = reply.api_key.name or key_name
    else:
        try:
            secret, key_id, key_name = _issue_key(admin_key, project_id, account_id)
        except AdminAPIError as exc:
            error = str(exc)
    with transaction.atomic():
        account = service_account_create(
            project=project, name=name, openai_id=account_id, actor=actor, request=request
        )
        api_key = None
        if secret:
            api_key = api_key_add(
                actor=actor,
                request=request,
                organization=project.organization,
                project=project,
                service_account=account,
                name=f"{name} ({key_name})"[:200],
                secret=secret,
                kind=APIKey.Kind.SERVICE_ACCOUNT,
                base_url=admin_key.base_url,
                openai_key_id=key_id,
            )
        _audit_push(
            "service_account_create",
            actor=actor,
            request=request,
            organization=project.organization,
            project=project,
            target=account,
            detail={
                "openai_service_account_id": account_id,
                "openai_key_id": key_id,
                "recovered": found is not None,
                **({"error": error} if error else {}),
            },
        )
    summary = f"Created service account {name} at OpenAI ({account_id})"
    if error:
        summary += f", but its key could not be issued: {error}"
    return ServiceAccountPush(
        account,
        api_key,
        secret,
        PushResult(summary + ".", created=[account_id], recovered=found is not None),
    )


@sensitive_variables("reply")
def _issue_key(admin_key, project_id: str, account_id: str) -> tuple[str, str, str]:
    """Delete the account's keys whose value we never saw, then issue one new key."""
    keys = admin_list(
        admin_key,
        "list the service account's keys",
        lambda api: api.projects.api_keys.list(project_id, limit=100, owner_project_access="any"),
    )
    for key in keys:
        owner = getattr(key, "owner", None)
        account = getattr(owner, "service_account", None) if owner else None
        if account is not None and account.id == account_id:
            admin_call(
                admin_key,
                "delete the key whose value was lost",
                lambda api, k=key.id: api.projects.api_keys.delete(k, project_id=project_id),
            )
    # A lost reply here would lose the value again: no retry, the error is reported.
    reply = admin_call(
        admin_key,
        "issue a key for the service account",
        lambda api: api.projects.service_accounts.api_keys.create(
            account_id, project_id=project_id, name="Secret key"
        ),
        create=True,
    )
    return reply.value, reply.id, reply.name or "Secret key"


# --- keys --------------------------------------------------------------------------------


def api_key_push_delete(*, api_key: APIKey, actor, request=None) -> PushResult:
    """Delete a key revoked here at OpenAI too (a 404 upstream: already gone, fine)."""
    if api_key.status == APIKey.Status.ACTIVE:
        raise PushRefused(f"Revoke {api_key.hint} here first; then delete it at OpenAI.")
    if not api_key.openai_key_id or api_key.project_id is None:
        raise PushRefused(
            f"{api_key.hint} has no OpenAI key id: run a pull to link it, or delete it in "
            "OpenAI's dashboard."
        )
    project_id = _linked(api_key.project)
    admin_key = _admin_key(api_key.organization)
    gone = False
    try:
        admin_call(
            admin_key,
            f"delete the key {api_key.hint} at OpenAI",
            lambda api: api.projects.api_keys.delete(api_key.openai_key_id, project_id=project_id),
        )
    except AdminAPIError as exc:
        if exc.status != 404:
            raise
        gone = True
    with transaction.atomic():
        api_key_record_upstream_delete(
            api_key=api_key, actor=actor, request=request, already_gone=gone
        )
    if gone:
        return PushResult(
            f"{api_key.hint} was already deleted at OpenAI.", unchanged=[api_key.hint]
        )
    return PushResult(f"Deleted {api_key.hint} at OpenAI.", updated=[api_key.openai_key_id])


# --- rate limits -------------------------------------------------------------------------


def project_rate_limits_upstream(*, project) -> list:
    """The project's rate limits as OpenAI lists them now (every page)."""
    project_id = _linked(project)
    admin_key = _admin_key(project.organization)
    return admin_list(
        admin_key,
        "read the project's rate limits",
        lambda api: api.projects.rate_limits.list_rate_limits(project_id, limit=100),
    )


def clean_rate_limit_values(raw: dict) -> dict[str, int]:
    """The posted limits as whole numbers; a blank field is left unchanged upstream."""
    values, errors = {}, {}
    for name in RATE_LIMIT_FIELDS:
        text = str(raw.get(name) or "").strip().replace(",", "").replace("_", "")
        if not text:
            continue
        if not text.isdigit() or not 0 < int(text) <= RATE_LIMIT_MAX:
            errors[name] = f"A whole number from 1 to {RATE_LIMIT_MAX:,}, or blank to keep it."
            continue
        values[name] = int(text)
    if errors:
        raise ValidationError(errors)
    if not values:
        raise ValidationError({"max_requests_per_1_minute": "Fill in at least one limit."})
    return values


def project_rate_limit_push(
    *, project, rate_limit_id: str, values: dict[str, int], actor, request=None
) -> PushResult:
    """Set one model's rate limits of ``project`` at OpenAI; the mirror row is updated."""
    limits = {rl.id: rl for rl in project_rate_limits_upstream(project=project)}
    if rate_limit_id not in limits:
        raise ValidationError({"rate_limit": "Choose one of the project's models listed here."})
    project_id = project.openai_project_id
    admin_key = _admin_key(project.organization)
    reply = admin_call(
        admin_key,
        f"set the rate limits of {limits[rate_limit_id].model}",
        lambda api: api.projects.rate_limits.update_rate_limit(
            rate_limit_id, project_id=project_id, **values
        ),
    )
    with transaction.atomic():
        UpstreamRateLimit.objects.update_or_create(
            project=project,
            openai_id=reply.id,
            defaults={
                "model": reply.model,
                **{name: getattr(reply, name, None) for name in RATE_LIMIT_FIELDS},
                "synced_at": timezone.now(),
            },
        )
        _audit_push(
            "rate_limit",
            actor=actor,
            request=request,
            organization=project.organization,
            project=project,
            target=project,
            detail={"model": reply.model, "rate_limit_id": reply.id, "values": values},
        )
    return PushResult(f"Set the rate limits of {reply.model} at OpenAI.", updated=[reply.id])


# --- budgets -----------------------------------------------------------------------------


def cents(amount: Decimal, *, rounding=ROUND_HALF_UP) -> int:
    return int((Decimal(amount) * 100).quantize(Decimal(1), rounding=rounding))


def _usd(amount_cents: int) -> str:
    """Cents as "1,234.50 USD" (exact: Decimal, never float)."""
    return f"{Decimal(amount_cents) / 100:,.2f} USD"


def owner_emails(organization) -> list[str]:
    """The organization owners who have an e-mail address (OpenAI's alerts are e-mail only)."""
    return sorted(
        {
            m.user.email.strip().lower()
            for m in organization_members(organization=organization).select_related("user")
            if m.role == "owner" and m.user.email and m.user.email.strip()
        }
    )


@dataclass
class BudgetPlan:
    """What a budget push will set upstream (shown on the confirmation page)."""

    scope: str  # "project" or "organization"
    limit_cents: int | None  # None: the budget has no hard limit, the spend limit stays
    alert_cents: list[int]
    recipients: list[str]


def budget_push_plan(*, budget) -> BudgetPlan:
    if budget.project_id is not None:
        _linked(budget.project)
    thresholds = sorted({int(t) for t in (budget.thresholds or []) if 0 < int(t)})
    return BudgetPlan(
        scope="project" if budget.project_id else "organization",
        # Rounded down: the limit upstream never lets more through than the budget.
        limit_cents=cents(budget.amount, rounding=ROUND_DOWN) if budget.hard_limit else None,
        alert_cents=sorted({cents(budget.amount * t / 100) for t in thresholds} - {0}),
        recipients=owner_emails(budget.organization),
    )


def budget_push(*, budget, actor, request=None) -> PushResult:
    """A budget's hard limit as OpenAI's spend limit, its thresholds as spend alerts.

    Idempotent: the limit is set (an update is a replace); an alert of the same amount is
    updated in place when its recipients differ, never created twice; alerts of other
    amounts (made in OpenAI's dashboard, or for old thresholds) are left as they are.
    """
    if not budget.is_active:
        raise PushRefused("This budget is paused: resume it before pushing it to OpenAI.")
    plan = budget_push_plan(budget=budget)
    if plan.alert_cents and not plan.recipients:
        raise PushRefused(
            "No organization owner has an e-mail address: OpenAI's spend alerts are sent by "
            "e-mail only. Add an e-mail address to an owner's account first."
        )
    organization = budget.organization
    admin_key = _admin_key(organization)
    project = budget.project
    if project is not None:
        pid = project.openai_project_id
        limits_api = lambda api: api.projects.spend_limit  # noqa: E731
        alerts_api = lambda api: api.projects.spend_alerts  # noqa: E731
        scoped = {"project_id": pid}
        where = f"project {project.name}"
    else:
        limits_api = lambda api: api.spend_limit  # noqa: E731
        alerts_api = lambda api: api.spend_alerts  # noqa: E731
        scoped = {}
        where = f"organization {organization.name}"
    positional = [scoped["project_id"]] if scoped else []
    result = PushResult("")
    limit_reply = None
    if plan.limit_cents is not None:
        limit_reply = admin_call(
            admin_key,
            f"set the spend limit of {where}",
            lambda api: limits_api(api).update(
                *positional, currency="USD", interval="month", threshold_amount=plan.limit_cents
            ),
        )
        result.updated.append(f"spend limit {plan.limit_cents}")
    channel = {"type": "email", "recipients": plan.recipients}
    existing = admin_list(
        admin_key,
        f"list the spend alerts of {where}",
        lambda api: alerts_api(api).list(*positional, limit=100),
    )
    by_amount = {a.threshold_amount: a for a in existing}
    alerts = []
    for amount in plan.alert_cents:
        alert = by_amount.get(amount)
        if alert is not None:
            current = sorted(getattr(alert.notification_channel, "recipients", None) or [])
            if current == plan.recipients:
                result.unchanged.append(f"alert {amount}")
            else:
                alert = admin_call(
                    admin_key,
                    f"update the spend alert at {_usd(amount)}",
                    lambda api, a=alert.id, amt=amount: alerts_api(api).update(
                        a,
                        **({"project_id": scoped["project_id"]} if scoped else {}),
                        currency="USD",
                        interval="month",
                        threshold_amount=amt,
                        notification_channel=channel,
                    ),
                )
                result.updated.append(f"alert {amount}")
        else:
            reply, found = create_then_find(
                admin_key,
                action=f"create the spend alert at {_usd(amount)}",
                create=lambda api, amt=amount: alerts_api(api).create(
                    *positional,
                    currency="USD",
                    interval="month",
                    threshold_amount=amt,
                    notification_channel=channel,
                ),
                listing=lambda api: alerts_api(api).list(*positional, limit=100),
                name_of=lambda a: a.threshold_amount,
                name=amount,
            )
            alert = reply or found
            result.recovered |= found is not None
            result.created.append(f"alert {amount}")
        alerts.append(alert)
    now = timezone.now()
    with transaction.atomic():
        if limit_reply is not None:
            UpstreamSpendLimit.objects.update_or_create(
                organization=organization,
                project=project,
                defaults={
                    "threshold_cents": plan.limit_cents,
                    "enforcement_status": str(
                        getattr(getattr(limit_reply, "enforcement", None), "status", "") or ""
                    ),
                    "synced_at": now,
                },
            )
        for alert in alerts:
            UpstreamSpendAlert.objects.update_or_create(
                organization=organization,
                openai_id=alert.id,
                defaults={
                    "project": project,
                    "threshold_cents": alert.threshold_amount,
                    "recipients": plan.recipients,
                    "synced_at": now,
                },
            )
        _audit_push(
            "budget",
            actor=actor,
            request=request,
            organization=organization,
            project=project,
            target=budget,
            detail={
                "spend_limit_cents": plan.limit_cents,
                "alert_cents": plan.alert_cents,
                "recipients": len(plan.recipients),
                "created": result.created,
                "updated": result.updated,
            },
        )
    parts = []
    if plan.limit_cents is not None:
        parts.append(f"spend limit {_usd(plan.limit_cents)} a month")
    else:
        parts.append("no hard limit, so OpenAI's spend limit was left as it is")
    if plan.alert_cents:
        parts.append(
            f"{len(result.created)} alert(s) created, {len(result.updated) - (limit_reply is not None)}"
            f" updated, {len(result.unchanged)} unchanged"
        )
    result.summary = f"Pushed the budget to OpenAI's {where}: " + "; ".join(parts) + "."
    return result
