"""The request log, the record page and the CSV exports (of the log and of the overview).

Who sees what is the overview's rule: organization owners and readers see every project
of the organization, a project member or owner who is not an organization member only
their own projects. The scope is resolved once per request (``_viewer``) and every query
below is restricted to it; a filter value outside it (another organization's project or
key, a made-up id) is refused with a message naming the field, never obeyed and never a 500.

The log reads raw records through ``usage.request_log`` (keyset pagination, no COUNT);
its totals, when the filters are ones the rollups know (range, project, key, model), come
from the rollups the overview reads (``usage.reports.usage_totals``), so the CSV's totals
row can be checked against the page.
"""

from __future__ import annotations

import csv
from collections.abc import AsyncIterator, Generator, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from urllib.parse import urlencode

from asgiref.sync import sync_to_async
from django import forms
from django.contrib.auth.decorators import login_required
from django.core.handlers.asgi import ASGIRequest
from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils.text import slugify

from keys.selectors import keys_of_projects
from orgs.access import OrganizationAccess, organization_access_for_user
from orgs.selectors import organization_projects_for_user
from orgs.views.common import read_only
from platformadmin.redaction import redact
from usage import request_log as log
from usage.models import UsageRecord
from usage.reports import UsageScope, usage_per_day, usage_report, usage_totals
from usage.selectors import catalog_models

from .ranges import RANGE_CHOICES, DateRange, RangeError, local_midnight, parse_range

FILTER_PARAMS = ("project", "key", "model", "status", "source", "q")


@dataclass
class Viewer:
    """The organization as this user may see it: the projects (all of them for an
    organization member) and the keys of those projects, each fetched once."""

    access: OrganizationAccess
    projects: list = field(default_factory=list)
    keys: list = field(default_factory=list)

    @property
    def organization(self):
        return self.access.organization

    @property
    def whole_organization(self) -> bool:
        return self.access.role is not None

    @property
    def project_ids(self) -> tuple[int, ...]:
        return tuple(p.pk for p in self.projects)


def _viewer(request: HttpRequest, org_id, *, with_keys: bool = True) -> Viewer:
    access = organization_access_for_user(request.user, org_id)  # outsiders: 404
    projects = list(
        organization_projects_for_user(user=request.user, organization=access.organization)
    )
    keys = list(keys_of_projects(project_ids=[p.pk for p in projects])) if with_keys else []
    return Viewer(access=access, projects=projects, keys=keys)


# --- filters ----------------------------------------------------------------------------


def _no_control_characters(value: str) -> None:
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise forms.ValidationError("remove the control characters (tabs, line breaks, NUL).")


class LogFilterForm(forms.Form):
    """The log's filters; choices are the viewer's own projects and keys, so an id from
    elsewhere is an invalid choice (with the fix in its message), never a lookup."""

    project = forms.ChoiceField(required=False)
    key = forms.ChoiceField(required=False)
    model = forms.CharField(
        required=False, max_length=100, validators=[_no_control_characters], strip=True
    )
    status = forms.ChoiceField(required=False, choices=[("", "Any status"), *log.STATUS_CHOICES])
    source = forms.ChoiceField(
        required=False, choices=[("", "Any source"), *UsageRecord.Source.choices]
    )
    q = forms.CharField(
        required=False,
        max_length=log.SEARCH_MAX_LENGTH,
        validators=[_no_control_characters],
        strip=True,
    )

    def __init__(self, data, *, viewer: Viewer):
        super().__init__(data)
        names = {p.pk: p.name for p in viewer.projects}
        self.fields["project"].choices = [("", "All projects")] + [
            (str(p.public_id), p.name) for p in viewer.projects
        ]
        self.fields["key"].choices = [("", "All keys")] + [
            (str(k.public_id), f"{names.get(k.project_id, '')} · {k.name} ({k.hint})")
            for k in viewer.keys
        ]
        self.fields["project"].error_messages["invalid_choice"] = (
            "no project you can see in this organization has this id: pick one from the list."
        )
        self.fields["key"].error_messages["invalid_choice"] = (
            "no key of a project you can see has this id: pick one from the list."
        )
        self.fields["status"].error_messages["invalid_choice"] = (
            "“%(value)s” is not a status: choose "
            + ", ".join(value for value, _ in log.STATUS_CHOICES)
            + "."
        )
        self.fields["source"].error_messages["invalid_choice"] = (
            "“%(value)s” is not a source: choose " + ", ".join(UsageRecord.Source.values) + "."
        )
        self.fields["model"].error_messages["max_length"] = (
            "a model id has at most %(limit_value)d characters."
        )
        self.fields["q"].error_messages["max_length"] = (
            "an id has at most %(limit_value)d characters: paste the response id or a "
            "request id alone."
        )
        self.fields["model"].widget.attrs.update({"list": "model-ids", "autocomplete": "off"})
        self.fields["q"].widget.attrs.update(
            {"placeholder": "resp_…, req_… or your client request id", "size": 34}
        )
        self._projects = {str(p.public_id): p for p in viewer.projects}
        self._keys = {str(k.public_id): k for k in viewer.keys}

    def project_obj(self):
        return self._projects.get(self.cleaned_data.get("project") or "")

    def key_obj(self):
        return self._keys.get(self.cleaned_data.get("key") or "")


@dataclass
class LogView:
    """What the request's parameters select, or the errors that say why they cannot."""

    viewer: Viewer
    date_range: DateRange
    form: LogFilterForm
    errors: list[RangeError]
    query: log.LogQuery | None
    project: object | None = None
    api_key: object | None = None

    @property
    def params(self) -> dict[str, str]:
        """The view's parameters (range and filters, no cursor), for links that keep it."""
        out = dict(self.date_range.query)
        if self.form.is_bound and not self.errors:
            for name in FILTER_PARAMS:
                value = self.form.cleaned_data.get(name) or ""
                if value:
                    out[name] = value
        return out

    @property
    def scope(self) -> UsageScope | None:
        """The same view as a rollup scope, when its filters are ones the rollups keep
        (status, source and an id search are not): then the page shows its totals."""
        query = self.query
        if query is None or query.status or query.source or query.search:
            return None
        if query.project_id is not None:
            project_ids = (query.project_id,)
        else:
            project_ids = None if self.viewer.whole_organization else query.project_ids
        return UsageScope(
            organization_id=query.organization_id,
            project_ids=project_ids,
            api_key_id=query.api_key_id,
            model=query.model or None,
        )


def _log_view(request: HttpRequest, viewer: Viewer) -> LogView:
    params = request.GET
    date_range, errors = parse_range(params, organization=viewer.organization)
    errors = list(errors)
    form = LogFilterForm(params, viewer=viewer)
    if not form.is_valid():
        for name, messages in form.errors.items():
            errors.extend(RangeError(name, str(m)) for m in messages)
    if errors:
        return LogView(viewer=viewer, date_range=date_range, form=form, errors=errors, query=None)
    data = form.cleaned_data
    project, api_key = form.project_obj(), form.key_obj()
    if project is not None and api_key is not None and api_key.project_id != project.pk:
        errors.append(
            RangeError("key", "this key belongs to another project: pick a key of the project.")
        )
        return LogView(viewer=viewer, date_range=date_range, form=form, errors=errors, query=None)
    query = log.LogQuery(
        organization_id=viewer.organization.pk,
        start=date_range.start,
        end=date_range.end,
        project_ids=viewer.project_ids,
        project_id=project.pk if project else None,
        api_key_id=api_key.pk if api_key else None,
        model=data["model"],
        status=data["status"],
        source=data["source"],
        search=data["q"],
    )
    return LogView(
        viewer=viewer,
        date_range=date_range,
        form=form,
        errors=errors,
        query=query,
        project=project,
        api_key=api_key,
    )


def _url(name: str, viewer: Viewer, params: dict) -> str:
    base = reverse(name, kwargs={"org_id": viewer.organization.public_id})
    return f"{base}?{urlencode(params)}" if params else base


# --- pages ------------------------------------------------------------------------------


@login_required
def request_log(request: HttpRequest, org_id) -> HttpResponse:
    """The records of a range, newest first, filtered and searchable, 50 a page."""
    viewer = _viewer(request, org_id)
    if (response := read_only(request)) is not None:
        return response
    view = _log_view(request, viewer)
    cursor = None
    raw_cursor = request.GET.get("cursor", "")
    if raw_cursor:
        try:
            cursor = log.Cursor.decode(raw_cursor)
        except log.CursorError:
            view.errors.append(
                RangeError(
                    "cursor",
                    "this page position is not one the console made (the link was cut or "
                    "edited): start again from the newest records.",
                )
            )
            view.query = None
    page = log.request_log_page(query=view.query, cursor=cursor) if view.query else None
    params = view.params
    totals = None
    if page is not None and (scope := view.scope) is not None:
        # One query on the rollups: the view's figures as the overview reads them.
        totals = usage_totals(scope=scope, start=view.date_range.start, end=view.date_range.end)
    context = {
        "organization": viewer.organization,
        "viewer": viewer,
        "view": view,
        "form": view.form,
        "errors": view.errors,
        "date_range": view.date_range,
        "zone": view.date_range.zone,
        "page": page,
        "totals": totals,
        "newest_url": _url("dashboard:request-log", viewer, params),
        "older_url": (
            _url("dashboard:request-log", viewer, {**params, "cursor": page.older.encode()})
            if page and page.older
            else None
        ),
        "newer_url": (
            _url("dashboard:request-log", viewer, {**params, "cursor": page.newer.encode()})
            if page and page.newer
            else None
        ),
        "csv_url": None if view.errors else _url("dashboard:request-log-csv", viewer, params),
        "model_ids": list(catalog_models().values_list("model_id", flat=True)),
        "range_choices": RANGE_CHOICES,
    }
    return render(
        request, "dashboard/request_log.html", context, status=400 if view.errors else 200
    )


def _record_id(value) -> int:
    """The record's internal id from the URL: anything but a plausible id is a 404."""
    try:
        number = int(value)
    except (TypeError, ValueError) as exc:
        raise Http404("Not found") from exc
    if not 0 < number < 2**63:
        raise Http404("Not found")
    return number


@login_required
def record_detail(request: HttpRequest, org_id, record_id) -> HttpResponse:
    """Every field of one record. The id in the URL is the internal one (the raw table has
    no public id: a UUID column on ten million rows, written on every ingestion, buys
    nothing the scope check does not): the record is looked up only inside the
    organization and the viewer's projects, so another organization's id is a 404."""
    viewer = _viewer(request, org_id, with_keys=False)
    if (response := read_only(request)) is not None:
        return response
    try:
        record = log.request_log_record(
            organization_id=viewer.organization.pk,
            record_id=_record_id(record_id),
            project_ids=viewer.project_ids,
        )
    except UsageRecord.DoesNotExist as exc:
        raise Http404("Not found") from exc
    # The key's name and hint only (keys_of_projects never reads the sealed secret).
    api_key = (
        keys_of_projects(project_ids=[record.project_id]).filter(pk=record.api_key_id).first()
        if record.api_key_id
        else None
    )
    zone = parse_range({}, organization=viewer.organization)[0].zone
    back = {"range": "custom"}
    day = record.occurred_at.astimezone(zone).date().isoformat()
    back.update({"start": day, "end": day})
    links = [("This project's records that day", {**back, "project": record.project.public_id})]
    if api_key is not None:
        links.append(("This key's records that day", {**back, "key": api_key.public_id}))
    links.append(("This model's records that day", {**back, "model": record.model}))
    return render(
        request,
        "dashboard/record_detail.html",
        {
            "organization": viewer.organization,
            "record": record,
            "record_key": api_key,
            "zone": zone,
            "ratelimit": sorted((record.ratelimit_headers or {}).items()),
            "links": [(label, _url("dashboard:request-log", viewer, q)) for label, q in links],
            "log_url": _url("dashboard:request-log", viewer, {}),
        },
    )


# --- CSV --------------------------------------------------------------------------------

# A cell a spreadsheet would run as a formula starts with one of these: such a cell is
# written with a leading apostrophe (OWASP's CSV-injection advice).
_FORMULA_CHARS = frozenset("=+-@\t\r")


def csv_cell(value) -> str:
    """A value as a CSV cell: money as an exact decimal string (never 1E-7), None as
    empty, text that could start a formula neutralised."""
    if value is None:
        return ""
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, datetime):
        return value.isoformat()
    return safe_text(str(value))


def safe_text(text: str | None) -> str:
    """Text as a cell: a leading apostrophe when it could start a formula."""
    if not text:
        return ""
    return "'" + text if text[0] in _FORMULA_CHARS else text


class _Lines:
    """csv.writer's file: collects written lines until they are handed on."""

    def __init__(self) -> None:
        self.parts: list[str] = []

    def write(self, value: str) -> None:
        self.parts.append(value)

    def take(self) -> str:
        text, self.parts = "".join(self.parts), []
        return text


# Rows per chunk handed to the server: one chunk per row would cost more than the row.
_ROWS_PER_CHUNK = 500


def _csv_lines(rows: Iterator[list], *, ready: bool = False) -> Generator[str]:
    """The rows as CSV text, a few hundred rows per chunk (memory: one chunk); ``ready``:
    the rows' cells are already what ``csv_cell`` would make of them."""
    out = _Lines()
    writer = csv.writer(out)
    for n, row in enumerate(rows, start=1):
        writer.writerow(row if ready else [csv_cell(v) for v in row])
        if n % _ROWS_PER_CHUNK == 0:
            yield out.take()
    if out.parts:
        yield out.take()


def _filename(kind: str, viewer: Viewer, date_range: DateRange) -> str:
    slug = slugify(viewer.organization.slug) or "organization"
    return f"{kind}-{slug}-{date_range.first.isoformat()}-{date_range.last.isoformat()}.csv"


def _next_chunk(lines: Iterator[str]) -> str | None:
    return next(lines, None)


async def _through_sync_thread(lines: Generator[str]) -> AsyncIterator[str]:
    """The sync chunks served asynchronously, one at a time.

    Under ASGI (uvicorn, as the console runs) Django turns a *sync* iterator of a
    streaming response into a list before sending it: the whole export in memory. Each
    chunk is pulled in the thread-sensitive sync thread instead, the one that holds this
    request's database connection and so the export's server-side cursor.
    """
    step = sync_to_async(_next_chunk, thread_sensitive=True)
    try:
        while (chunk := await step(lines)) is not None:
            yield chunk
    finally:  # the reader left or the file ended: close the cursor in its own thread
        await sync_to_async(lines.close, thread_sensitive=True)()


def _csv_response(
    request: HttpRequest, lines: Generator[str], filename: str
) -> StreamingHttpResponse:
    content = _through_sync_thread(lines) if isinstance(request, ASGIRequest) else lines
    response = StreamingHttpResponse(content, content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response["Cache-Control"] = "no-store"
    return response


def _refused(request: HttpRequest, view: LogView, viewer: Viewer) -> HttpResponse:
    """A bad export link gets the log page with its errors (400), not a broken file."""
    return render(
        request,
        "dashboard/request_log.html",
        {
            "organization": viewer.organization,
            "viewer": viewer,
            "view": view,
            "form": view.form,
            "errors": view.errors,
            "date_range": view.date_range,
            "zone": view.date_range.zone,
            "page": None,
            "totals": None,
            "newest_url": _url("dashboard:request-log", viewer, view.date_range.query),
            "csv_url": None,
            "model_ids": [],
            "range_choices": RANGE_CHOICES,
        },
        status=400,
    )


def _log_csv_rows(query: log.LogQuery, zone) -> Iterator[list]:
    """Header, every record (read in chunks), then the totals row: summed as the rows go
    by, exactly (integers and Decimal), so memory stays flat whatever the range. Each
    record's cells are made ready here, column by column (the text columns neutralised),
    so they pass through ``_csv_lines`` as they are."""
    names = [name for name, _ in log.EXPORT_COLUMNS]
    yield [
        label if name != "occurred_at" else f"occurred at ({zone.key})"
        for name, label in log.EXPORT_COLUMNS
    ]
    totals = log.ExportTotals()
    text_at = [i for i, name in enumerate(names) if name in _TEXT_COLUMNS]
    free_at = [i for i, name in enumerate(names) if name in _FREE_TEXT_COLUMNS]
    at, cost_at, latency_at = (names.index(n) for n in ("occurred_at", "cost", "latency_ms"))
    for row in log.request_log_export_rows(query=query):
        totals.add(row)
        values = list(row)
        values[at] = values[at].astimezone(zone).isoformat()
        cost = values[cost_at]
        values[cost_at] = "" if cost is None else format(cost, "f")
        if values[latency_at] is None:
            values[latency_at] = ""
        for i in free_at:  # text the reporting application chose: no key shown in clear
            if values[i]:
                values[i] = redact(values[i])
        for i in text_at:
            values[i] = safe_text(values[i])
        yield values
    tail = dict.fromkeys(names, "")
    tail["occurred_at"] = "TOTAL"
    tail["project__name"] = f"{totals.requests} requests"
    tail["model"] = f"{totals.unpriced_requests} unpriced"
    tail.update(totals.tokens)
    tail["cost"] = format(totals.cost, "f")
    yield [tail[name] for name in names]


# Free text an application reports as it likes (ids of OpenAI's own shapes are left be).
_FREE_TEXT_COLUMNS = {"client_request_id", "error_type"}
# Columns that hold text someone else chose (names, ids, model, error type).
_TEXT_COLUMNS = {
    "project__name",
    "api_key__name",
    "api_key__hint",
    "model",
    "service_tier",
    "source",
    "status",
    "error_type",
    "response_id",
    "server_request_id",
    "client_request_id",
}


@login_required
def request_log_csv(request: HttpRequest, org_id) -> HttpResponse:
    """The log's current view (range and filters; the cursor is ignored: the whole view),
    streamed row by row."""
    viewer = _viewer(request, org_id)
    if (response := read_only(request)) is not None:
        return response
    view = _log_view(request, viewer)
    if view.query is None:
        return _refused(request, view, viewer)
    return _csv_response(
        request,
        _csv_lines(_log_csv_rows(view.query, view.date_range.zone), ready=True),
        _filename("requests", viewer, view.date_range),
    )


def _overview_csv_rows(viewer: Viewer, view: LogView, stack_by: str) -> Iterator[list]:
    """One row per local day (requests, tokens, cost, unpriced calls, cost per stack) and
    the totals row, which is the overview's own totals (the same report)."""
    scope = view.scope
    date_range = view.date_range
    zone = date_range.zone
    series = usage_per_day(
        scope=scope,
        days=date_range.days,
        zone=zone,
        stack_by=stack_by,
        day_start=lambda d: local_midnight(d, zone),
    )
    report = usage_report(scope=scope, start=date_range.start, end=date_range.end)
    names = {p.pk: p.name for p in viewer.projects}

    def stack_label(stack) -> str:
        return names.get(stack, str(stack)) if stack_by == "project" else str(stack)

    counters = (
        "requests",
        "input_tokens",
        "cached_input_tokens",
        "output_tokens",
        "reasoning_tokens",
        "total_tokens",
    )
    yield [
        f"day ({zone.key})",
        *[c.replace("_", " ") for c in counters],
        "cost (USD)",
        "unpriced calls",
        *[f"cost: {stack_label(s)}" for s in series.stacks],
    ]
    for row in series.days:
        f = row.figures
        yield [
            row.day.isoformat(),
            *[getattr(f, c) for c in counters],
            f.priced_cost,
            f.unpriced_requests,
            *[row.stacks.get(s) for s in series.stacks],
        ]
    t = report.totals
    yield [
        "TOTAL",
        *[getattr(t, c) for c in counters],
        t.priced_cost,
        t.unpriced_requests,
        *["" for _ in series.stacks],
    ]


@login_required
def overview_csv(request: HttpRequest, org_id) -> HttpResponse:
    """The overview's current view (range, project, key, model; ``by`` project or
    model) as one row per day with the overview's totals."""
    viewer = _viewer(request, org_id)
    if (response := read_only(request)) is not None:
        return response
    view = _log_view(request, viewer)
    stack_by = request.GET.get("by") or "project"
    if stack_by not in ("project", "model"):
        view.errors.append(
            RangeError("by", "stack the days by project or by model (by=project or by=model).")
        )
        view.query = None
    if view.query is not None and view.scope is None:
        view.errors.append(
            RangeError(
                "status",
                "the overview has no status, source or id filter: export the request log "
                "for those.",
            )
        )
        view.query = None
    if view.query is None:
        return _refused(request, view, viewer)
    return _csv_response(
        request,
        _csv_lines(_overview_csv_rows(viewer, view, stack_by)),
        _filename("usage", viewer, view.date_range),
    )
