"""The audit log page and its CSV export (organization owners and readers)."""

from __future__ import annotations

import csv
import json

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import render

from platformadmin.redaction import redact

from ..access import organization_access_for_user, organization_role
from ..forms import AuditFilterForm
from ..selectors import audit_actions, audit_events_for_organization
from .common import read_only, switcher_context

AUDIT_PAGE_SIZE = 100


def _audit_organization(request: HttpRequest, org_id):
    """Organization members (owners and readers) read the audit log; project-only
    members do not (it covers the whole organization)."""
    access = organization_access_for_user(request.user, org_id)
    if access.role is None:
        raise PermissionDenied("Only organization owners and readers can read the audit log.")
    return access.organization


def _filtered_events(request: HttpRequest, organization):
    form = AuditFilterForm(
        request.GET or None,
        projects=organization.projects.order_by("name"),
        actions=audit_actions(organization=organization),
    )
    filters = {}
    if form.is_bound and form.is_valid():
        filters = {k: v for k, v in form.cleaned_data.items() if v}
    return form, audit_events_for_organization(organization=organization, **filters)


@login_required
def audit_log_view(request: HttpRequest, org_id) -> HttpResponse:
    organization = _audit_organization(request, org_id)
    if (response := read_only(request)) is not None:
        return response
    form, events = _filtered_events(request, organization)
    query = request.GET.copy()
    query.pop("page", None)
    try:
        page = max(1, int(request.GET.get("page", "1")))
    except ValueError:
        page = 1
    start = (page - 1) * AUDIT_PAGE_SIZE
    rows = list(events[start : start + AUDIT_PAGE_SIZE + 1])
    context = {
        "organization": organization,
        "form": form,
        "events": rows[:AUDIT_PAGE_SIZE],
        "page": page,
        "has_next": len(rows) > AUDIT_PAGE_SIZE,
        "query": query.urlencode(),
        # Owners pull OpenAI's audit log into this one (platformadmin/sync/audit.py).
        "can_pull_openai": organization_role(request.user, organization) == "owner",
        **switcher_context(request, organization),
    }
    if request.htmx:
        return render(request, "orgs/audit_log.html#events", context)
    return render(request, "orgs/audit_log.html", context)


class _Echo:
    def write(self, value):
        return value


@login_required
def audit_log_export(request: HttpRequest, org_id) -> HttpResponse:
    """CSV of the filtered events (UTC timestamps), streamed."""
    organization = _audit_organization(request, org_id)
    if (response := read_only(request)) is not None:
        return response
    _, events = _filtered_events(request, organization)
    writer = csv.writer(_Echo())
    header = [
        "occurred_at_utc",
        "actor",
        "action",
        "target_type",
        "target_id",
        "target",
        "project",
        "ip_address",
        "detail",
    ]

    def rows():
        yield writer.writerow(header)
        for event in events.iterator(chunk_size=500):
            yield writer.writerow(
                [
                    event.occurred_at.isoformat(),
                    event.actor_label,
                    event.action,
                    event.target_type,
                    event.target_id,
                    _csv_safe(redact(event.target_label)),
                    _csv_safe(event.project.name if event.project else ""),
                    # Rows written before redaction by shape existed are redacted as they are read.
                    event.ip_address or "",
                    _csv_safe(redact(_json(event.detail))),
                ]
            )

    response = StreamingHttpResponse(rows(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="audit-{organization.slug}.csv"'
    return response


def _json(value) -> str:
    return json.dumps(value, sort_keys=True, default=str, ensure_ascii=False)


def _csv_safe(value: str) -> str:
    """Neutralise spreadsheet formulas (CSV injection) in free-text cells."""
    if value and value[0] in "=+-@\t\r":
        return "'" + value
    return value
