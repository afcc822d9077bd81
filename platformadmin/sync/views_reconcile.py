"""The reconciliation page: what the console logged vs what OpenAI reports, per UTC day,
project and model (OpenAI's Costs figures are the bill), and the "Pull now" button.

Organization owners and readers see it (it is the whole organization's spend); a user with
project roles only gets 403 (outsiders 404, as everywhere). Only owners pull.
"""

from __future__ import annotations

from datetime import UTC, date, timedelta
from decimal import Decimal

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import (
    HttpRequest,
    HttpResponse,
    HttpResponseBadRequest,
    HttpResponseNotAllowed,
)
from django.shortcuts import redirect, render
from django.urls import path, reverse
from django.utils import timezone

from keys.selectors import organization_admin_key
from orgs.access import organization_access_for_user
from orgs.views.common import read_only, switcher_context

from .models import SyncRun
from .services import reconciliation, reconciliation_gaps, usage_pull

DEFAULT_DAYS = 7
MAX_DAYS = 93


def _member_access(request: HttpRequest, org_id, *, manage: bool = False):
    access = organization_access_for_user(request.user, org_id)
    if access.role is None:  # project roles only: the organization's bill is not theirs
        raise PermissionDenied(
            "Only organization owners and readers see the organization's bill from OpenAI."
        )
    if manage and not access.is_owner:
        raise PermissionDenied("Only organization owners can pull from OpenAI.")
    return access


def _parse_day(raw: str | None, field: str, default: date) -> date:
    if not raw:
        return default
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise ValueError(f"{field}: '{raw[:40]}' is not a date; use YYYY-MM-DD.") from None


def _range(request: HttpRequest) -> tuple[date, date]:
    today = timezone.now().astimezone(UTC).date()
    until = _parse_day(request.GET.get("until"), "until", today)
    since = _parse_day(request.GET.get("since"), "since", until - timedelta(days=DEFAULT_DAYS - 1))
    if since > until:
        raise ValueError("since: the first day must not be after the last day (until).")
    if (until - since).days >= MAX_DAYS:
        raise ValueError(f"since: a range is at most {MAX_DAYS} days; pick a later first day.")
    return since, until


@login_required
def reconciliation_page(request: HttpRequest, org_id) -> HttpResponse:
    access = _member_access(request, org_id)
    if refused := read_only(request):  # after the access check: outsiders get 404 first
        return refused
    organization = access.organization
    try:
        since, until = _range(request)
    except ValueError as exc:
        return HttpResponseBadRequest(str(exc), content_type="text/plain; charset=utf-8")
    rows = reconciliation(organization=organization, since=since, until=until)
    gaps = reconciliation_gaps(rows)
    flagged = {(g.day, g.project.pk if g.project else g.project_openai_id) for g in gaps}
    totals = {
        "logged": sum((r.logged_cost for r in rows), Decimal(0)),
        "upstream": sum((r.upstream_cost for r in rows), Decimal(0)),
        "unpriced": sum(r.logged_unpriced for r in rows),
    }
    totals["difference"] = totals["logged"] - totals["upstream"]
    last_pull = (
        SyncRun.objects.filter(organization=organization, kind=SyncRun.Kind.USAGE)
        .order_by("-started_at", "-pk")
        .first()
    )
    return render(
        request,
        "sync/reconcile_page.html",
        {
            "organization": organization,
            "access": access,
            "rows": [
                (r, (r.day, r.project.pk if r.project else r.project_openai_id) in flagged)
                for r in rows
            ],
            "gaps": gaps,
            "totals": totals,
            "since": since,
            "until": until,
            "last_pull": last_pull,
            "has_admin_key": organization_admin_key(organization=organization) is not None,
            **switcher_context(request, organization),
        },
    )


@login_required
def usage_pull_now(request: HttpRequest, org_id) -> HttpResponse:
    access = _member_access(request, org_id, manage=request.method == "POST")
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    run = usage_pull(organization=access.organization, actor=request.user)
    if run.status == SyncRun.Status.SUCCEEDED:
        messages.success(
            request,
            f"Pulled OpenAI's usage and costs: {run.report.get('usage_rows', 0)} usage rows, "
            f"{run.report.get('cost_rows', 0)} cost rows"
            + ("" if run.report.get("changed") else " (nothing changed since the last pull)")
            + ".",
        )
    else:
        messages.error(request, " ".join(run.report.get("errors") or ["The pull failed."]))
    return redirect(
        reverse("sync:reconciliation", kwargs={"org_id": access.organization.public_id})
    )


urlpatterns = [
    path("<uuid:org_id>/reconciliation/", reconciliation_page, name="reconciliation"),
    path("<uuid:org_id>/usage-pull/", usage_pull_now, name="usage-pull"),
]
