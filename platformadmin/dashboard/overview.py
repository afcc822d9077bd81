"""The usage dashboard's pages: the organization overview and the project and key
drill-downs (the same panels, filtered), plus the "Usage" entry of the top navigation.

Who sees what (orgs/access.py): organization owners and readers see the whole
organization; someone who is only a project member or owner sees their projects alone,
on the overview too (the others' spend must not show: those projects 404 for them).

Every panel reads the rollups through usage/reports.py; names of projects and keys are
fetched once per page (no query per row). Bad query parameters are answered with the
default view and a message naming the parameter, never a 500.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from functools import lru_cache
from html import escape
from urllib.parse import urlencode

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.safestring import mark_safe
from django.utils.translation import get_language

from keys.access import api_key_access_for_user
from keys.selectors import api_keys_by_id
from orgs.access import (
    Need,
    organization_access_for_user,
    organizations_for_user,
    parse_public_id,
    project_access_for_user,
)
from orgs.models import Organization
from orgs.selectors import organization_projects_for_user
from orgs.views.common import CURRENT_ORG_SESSION_KEY, read_only, switcher_context
from platformadmin.templatetags.console_format import format_amount, format_money
from usage.budgets import budget_status
from usage.reports import (
    MONEY_COUNTERS,
    OTHER,
    DailySeries,
    Figures,
    GroupRow,
    UsageReport,
    UsageScope,
    scope_budget,
    usage_per_day,
    usage_report,
    usage_totals,
)
from usage.selectors import billing_month

from .charts import SERIES_CLASSES, stacked_days_svg
from .ranges import RANGE_CHOICES, DateRange, RangeError, local_midnight, parse_range

TOP = 10
DAY_CELL = '<td class="num" data-cost="{}">{}</td>'


@dataclass
class Filters:
    """The page's query parameters after checking, and the messages for refused ones."""

    rng: DateRange
    stack_by: str
    project: object | None  # a visible project chosen on the overview
    errors: list[RangeError]

    def query(self, **overrides) -> dict[str, str]:
        params = {**self.rng.query, "by": self.stack_by}
        if self.project is not None:
            params["project"] = str(self.project.public_id)
        params.update({k: v for k, v in overrides.items() if v is not None})
        return {k: v for k, v in params.items() if v != ""}


def _filters(
    request: HttpRequest,
    *,
    organization: Organization,
    stacks: tuple[str, ...],
    projects: Iterable | None = None,
) -> Filters:
    rng, errors = parse_range(request.GET, organization=organization)
    stack_by = (request.GET.get("by") or "").strip() or stacks[0]
    if stack_by not in stacks:
        errors.append(
            RangeError("by", f"the chart stacks by {' or '.join(stacks)}: pick one of those.")
        )
        stack_by = stacks[0]
    chosen = None
    raw = (request.GET.get("project") or "").strip()
    if raw and projects is not None:
        try:
            wanted = parse_public_id(raw)
        except Http404:  # a malformed id: a message on the page, not a 404 page
            wanted = None
        chosen = next((p for p in projects if p.public_id == wanted), None)
        if chosen is None:
            errors.append(
                RangeError(
                    "project",
                    "no project of yours has this id: pick one from the list (showing all).",
                )
            )
    return Filters(rng=rng, stack_by=stack_by, project=chosen, errors=errors)


def _request_log_url(base: str, **params) -> str:
    """A link to the request log (``base``, its path: reversed once per page, not per row)
    filtered like the row it sits on (request_log.py)."""
    query = {k: v for k, v in params.items() if v not in (None, "")}
    return f"{base}?{urlencode(query)}" if query else base


def _this_month(*, organization: Organization, scope: UsageScope, status) -> Figures:
    """The scope's spend this billing month (the budget's period, ``billing_month``: every
    call stamped in it): the budget's own figure when the scope has one (the same month,
    the same rollups), else one read of the month's money counters."""
    if status is not None:
        return Figures(
            requests=status.requests,
            priced_cost=status.spend,
            unpriced_requests=status.unpriced_requests,
        )
    start, end = billing_month(organization=organization, now=timezone.now())
    return usage_totals(scope=scope, start=start, end=end, counters=MONEY_COUNTERS)


def _table_row(row: GroupRow, **cells) -> dict:
    """A row of a top list with what its cells read, looked up once (the template resolved
    ``entry.row.figures.cost`` and the like per cell, through a failed ``[]`` each)."""
    f = row.figures
    return {"key": row.key, "f": f, "cost": _exact(f.cost), "share": row.share, **cells}


def _exact(amount: Decimal | None) -> str:
    """An amount for a ``data-cost`` attribute: what ``{{ amount|default_if_none:'' }}``
    writes in the console's locale (en-us, no thousands separator), the exact Decimal."""
    return "" if amount is None else f"{amount:f}"


@lru_cache(maxsize=2048)
def _day_label(day: date, language: str | None) -> str:
    """``{{ day|date:"D j M" }}`` (the filter's own call), once per day and language: it
    reads three translated names per call, 20 µs, 2 ms for a 90-day table."""
    return date_format(day, "D j M")


def _series(daily: DailySeries, names: dict) -> tuple[list[dict], list[dict]]:
    """The stacks (name, swatch class) and the per-day rows of the chart's table.

    A row's stack cells (up to 9 a day, 810 at 90 days) are HTML made here: in the
    template their loop, filters and escaping were half of the page's render time.
    Each value is escaped by html.escape, the function django.utils.html.escape (and so
    the template) calls; format_html's lazy-string wrappers tripled the cost."""
    stacks = [
        {
            "key": stack,
            "name": OTHER if stack == OTHER else names.get(stack, str(stack)),
            "swatch": f"c{i % SERIES_CLASSES}",
        }
        for i, stack in enumerate(daily.stacks)
    ]
    rows = []
    language = get_language()
    for row in daily.days:
        cells = [row.stacks.get(s["key"]) for s in stacks]
        figures = row.figures
        rows.append(
            {
                "day": row.day,
                "iso": row.day.isoformat(),
                "label": _day_label(row.day, language),
                "cells": cells,
                # every value escaped above; nothing else goes in
                "cells_html": mark_safe(  # noqa: S308
                    "".join(
                        DAY_CELL.format(escape(_exact(c)), escape(format_money(c))) for c in cells
                    )
                ),
                "figures": figures,
                "cost": _exact(figures.cost),
                "amount": (
                    format_amount(figures.cost, figures.requests, figures.unpriced_requests)
                    if figures.requests
                    else ""
                ),
            }
        )
    return stacks, rows


def _chart(title: str, stacks: list[dict], rows: list[dict]):
    months = {(row["day"].year, row["day"].month) for row in rows}
    labels = [
        str(row["day"].day) if len(months) == 1 else f"{row['day'].day} {row['day']:%b}"
        for row in rows
    ]
    series = [(stack["name"], [row["cells"][i] for row in rows]) for i, stack in enumerate(stacks)]
    return stacked_days_svg(title=title, x_labels=labels, series=series)


def _render(
    request: HttpRequest,
    *,
    organization: Organization,
    scope: UsageScope,
    filters: Filters,
    stacks_allowed: tuple[str, ...],
    project_names: dict[int, str],
    page: str,
    heading: str,
    extra: dict,
) -> HttpResponse:
    rng = filters.rng
    report: UsageReport = usage_report(scope=scope, start=rng.start, end=rng.end)
    daily = usage_per_day(
        scope=scope,
        days=rng.days,
        zone=rng.zone,
        stack_by=filters.stack_by,
        day_start=lambda d: local_midnight(d, rng.zone),
        counters=MONEY_COUNTERS,  # the chart and its table show money and requests
    )
    key_ids = {row.key for row in report.by_key[:TOP] if row.key}
    if filters.stack_by == "key":
        key_ids |= {s for s in daily.stacks if s != OTHER and s}
    keys = api_keys_by_id(key_ids=key_ids) if key_ids else {}
    key_names = {pk: f"{k.name} ({k.hint})" for pk, k in keys.items()}
    key_names[0] = "No key / deleted key"
    stack_names = {"project": project_names, "model": {}, "key": key_names}[filters.stack_by]
    stacks, day_rows = _series(daily, stack_names)
    stack_title = {"project": "project", "model": "model", "key": "key"}[filters.stack_by]
    title = f"Spend per day by {stack_title}, {rng.span_label}"
    budget = scope_budget(scope=scope)
    status = budget_status(budget=budget) if budget is not None else None
    month = _this_month(organization=organization, scope=scope, status=status)
    log_base = {**rng.query}
    if scope.project_ids is not None and len(scope.project_ids) == 1:
        log_base["project"] = str(extra.get("project_public_id", ""))
    if extra.get("api_key") is not None:
        log_base["key"] = str(extra["api_key"].public_id)
    log_path = reverse("dashboard:request-log", kwargs={"org_id": organization.public_id})
    log = lambda **p: _request_log_url(log_path, **{**log_base, **p})  # noqa: E731
    range_query = rng.querystring
    project_rows = []
    for row in report.by_project[:TOP]:
        name, public_id = extra["project_labels"].get(row.key) or (None, None)
        project_rows.append(
            _table_row(
                row,
                name=name,
                href=None
                if public_id is None
                else reverse("dashboard:project", kwargs={"project_id": public_id})
                + f"?{range_query}",
                log=None if public_id is None else log(project=str(public_id)),
            )
        )
    key_rows = []
    for row in report.by_key[:TOP]:
        api_key = keys.get(row.key)
        key_rows.append(
            _table_row(
                row,
                api_key=api_key,
                href=None
                if api_key is None
                else reverse("dashboard:key", kwargs={"key_id": api_key.public_id})
                + f"?{range_query}",
                log=None if api_key is None else log(key=str(api_key.public_id)),
            )
        )
    model_rows = [
        _table_row(
            row,
            log=log(model=row.key),
            # properties computed once (the template asked each twice)
            cost_per_1k=row.figures.cost_per_1k_requests,
            tokens_per_call=row.figures.tokens_per_call,
            cache_hit_rate=row.figures.cache_hit_rate,
        )
        for row in report.by_model[: TOP * 3]
    ]
    context = {
        "organization": organization,
        "page": page,
        "heading": heading,
        "filters": filters,
        "rng": rng,
        "range_choices": RANGE_CHOICES,
        "range_links": [
            (key, label, "?" + urlencode(filters.query(range=key, start="", end="")))
            for key, label in RANGE_CHOICES
            if key != "custom"
        ],
        "stack_links": [(by, "?" + urlencode(filters.query(by=by))) for by in stacks_allowed],
        "report": report,
        "totals": report.totals,
        "month": month,
        "budget": status,
        "budget_bar": (round(status.bar_percent, -1) if status else 0),
        "chart_svg": _chart(title, stacks, day_rows),
        "chart_title": title,
        "stacks": stacks,
        "day_rows": day_rows,
        "project_rows": project_rows,
        "key_rows": key_rows,
        "model_rows": model_rows,
        "more_projects": max(0, len(report.by_project) - TOP),
        "more_keys": max(0, len(report.by_key) - TOP),
        "log_all": log(),
        "log_errors": log(status="error"),
        "log_incomplete": log(status="incomplete"),
        "range_query": range_query,
        **extra,
        **switcher_context(request, organization),
    }
    return render(request, "dashboard/usage.html", context)


@login_required
def dashboard_home(request: HttpRequest) -> HttpResponse:
    """ "Usage" in the top navigation: the overview of the user's organization (the one
    they last opened, or their only one), else a chooser."""
    if (response := read_only(request)) is not None:
        return response
    organizations = list(organizations_for_user(request.user).order_by("name"))
    current = request.session.get(CURRENT_ORG_SESSION_KEY, "")
    chosen = next((o for o in organizations if str(o.public_id) == str(current)), None)
    if chosen is None and len(organizations) == 1:
        chosen = organizations[0]
    if chosen is not None:
        return redirect("dashboard:overview", org_id=chosen.public_id)
    return render(request, "dashboard/choose.html", {"organizations": organizations})


@login_required
def overview(request: HttpRequest, org_id) -> HttpResponse:
    """The organization's usage: the whole organization for its members, the user's own
    projects for someone who is only a project member or owner."""
    access = organization_access_for_user(request.user, org_id)
    if (response := read_only(request)) is not None:
        return response
    organization = access.organization
    projects = list(
        organization_projects_for_user(user=request.user, organization=organization).only(
            "pk", "public_id", "name", "organization_id"
        )
    )
    filters = _filters(
        request, organization=organization, stacks=("project", "model"), projects=projects
    )
    visible_ids = None if access.role is not None else tuple(p.pk for p in projects)
    scope_ids = (filters.project.pk,) if filters.project is not None else visible_ids
    scope = UsageScope(organization_id=organization.pk, project_ids=scope_ids)
    return _render(
        request,
        organization=organization,
        scope=scope,
        filters=filters,
        stacks_allowed=("project", "model"),
        project_names={p.pk: p.name for p in projects},
        page="overview",
        heading="Usage",
        extra={
            "projects": projects,
            "whole_organization": access.role is not None,
            "project_labels": {p.pk: (p.name, p.public_id) for p in projects},
            "chosen_project": filters.project,
            "project_public_id": filters.project.public_id if filters.project else "",
        },
    )


@login_required
def project_usage(request: HttpRequest, project_id) -> HttpResponse:
    """One project's usage: the overview's panels, filtered, stacked by model or key."""
    access = project_access_for_user(request.user, project_id, need=Need.READ)
    if (response := read_only(request)) is not None:
        return response
    project = access.project
    organization = project.organization
    filters = _filters(request, organization=organization, stacks=("model", "key"))
    scope = UsageScope(organization_id=organization.pk, project_ids=(project.pk,))
    return _render(
        request,
        organization=organization,
        scope=scope,
        filters=filters,
        stacks_allowed=("model", "key"),
        project_names={project.pk: project.name},
        page="project",
        heading=f"Usage of {project.name}",
        extra={
            "project": project,
            "project_labels": {project.pk: (project.name, project.public_id)},
            "project_public_id": project.public_id,
        },
    )


@login_required
def key_usage(request: HttpRequest, key_id) -> HttpResponse:
    """One key's usage: the overview's panels for the calls made with it, by model."""
    access = api_key_access_for_user(request.user, key_id, need=Need.READ)
    if (response := read_only(request)) is not None:
        return response
    api_key = access.api_key
    organization = api_key.organization
    filters = _filters(request, organization=organization, stacks=("model",))
    project = api_key.project
    # An admin key has no project and no usage records: its scope matches nothing.
    scope = UsageScope(
        organization_id=organization.pk,
        project_ids=(project.pk,) if project is not None else (),
        api_key_id=api_key.pk,
    )
    return _render(
        request,
        organization=organization,
        scope=scope,
        filters=filters,
        stacks_allowed=("model",),
        project_names={project.pk: project.name} if project else {},
        page="key",
        heading=f"Usage of {api_key.name} ({api_key.hint})",
        extra={
            "project": project,
            "api_key": api_key,
            "project_labels": {project.pk: (project.name, project.public_id)} if project else {},
            "project_public_id": project.public_id if project else "",
            "key_month": True,
        },
    )
