"""Console pages for organizations, projects and the audit log (members:
orgs/views_members.py; sign-in pages: orgs/views_auth.py; the project page, its
checklist, settings and model limits, which compose keys and usage:
platformadmin/project_views.py).

Every view starts with an access helper from orgs/access.py (404 for outsiders, 403 for
an insufficient role), then form → service → redirect. Write-only views check access
before the HTTP method, so an outsider gets the same 404 whatever the method.
"""

from __future__ import annotations

import csv

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import FieldDoesNotExist, PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.text import capfirst

from platformadmin.redaction import redact

from . import services
from .access import (
    Need,
    can_create_organization,
    get_organization_for_user,
    get_project_for_user,
    organization_access_for_user,
    organizations_for_user,
)
from .forms import (
    AuditFilterForm,
    ModelLimitRemoveForm,
    OrganizationCreateForm,
    OrganizationForm,
    ProjectCreateForm,
    ServiceAccountForm,
)
from .selectors import (
    audit_actions,
    audit_events_for_organization,
)

CURRENT_ORG_SESSION_KEY = "current_organization"
AUDIT_PAGE_SIZE = 100


def _post_only(request: HttpRequest) -> HttpResponse | None:
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    return None


def read_only(request: HttpRequest) -> HttpResponse | None:
    """Pages that only show things answer 405 to writes (after the access check); also
    used by the project page (platformadmin/project_views.py)."""
    if request.method not in ("GET", "HEAD"):
        return HttpResponseNotAllowed(["GET", "HEAD"])
    return None


def _form_errors(form) -> str:
    return "; ".join(
        f"{form.fields[name].label if name in form.fields else 'Form'}: {' '.join(errors)}"
        for name, errors in form.errors.items()
    )


def _field_label(name: str, form=None, model=None) -> str:
    """What a person reads for a field: the form's label, else the model's verbose name
    (capitalised), never the raw attribute name."""
    if form is not None and name in form.fields and form.fields[name].label:
        return str(form.fields[name].label)
    if model is not None:
        try:
            return capfirst(model._meta.get_field(name).verbose_name)
        except FieldDoesNotExist:
            pass
    return capfirst(name.replace("_", " "))


def validation_message(exc: ValidationError, *, form=None, model=None) -> str:
    if hasattr(exc, "message_dict"):
        return "; ".join(f"{_field_label(field, form, model)}: {' '.join(msgs)}" if field != "__all__"
                         else " ".join(msgs) for field, msgs in exc.message_dict.items())
    return " ".join(exc.messages)


def saved_message(changed, *, form) -> str:
    """"Saved: Usage tier, Billing timezone." — labels, in the form's order."""
    if not changed:
        return "Nothing changed."
    return f"Saved: {', '.join(_field_label(name, form) for name in form.fields if name in changed)}."


def post_action(request: HttpRequest, form, action, *, back: str) -> HttpResponse:
    """A POST-only form action on an object page (the caller has checked access).

    ``action(cleaned_data)`` runs the service and returns the success message; invalid
    input or a ``ValidationError`` from the service becomes an error message naming the
    field. Either way the user goes back to ``back``.
    """
    if (response := _post_only(request)) is not None:
        return response
    if not form.is_valid():
        messages.error(request, _form_errors(form))
    else:
        try:
            messages.success(request, action(form.cleaned_data))
        except ValidationError as exc:
            messages.error(request, validation_message(exc, form=form))
    return redirect(back)


def _org_back(organization, anchor: str) -> str:
    return reverse("orgs:organization-detail", kwargs={"org_id": organization.public_id}) + anchor


def project_back(project, anchor: str) -> str:
    return reverse("orgs:project-detail", kwargs={"project_id": project.public_id}) + anchor


def switcher_context(request: HttpRequest, current=None) -> dict:
    """The organization switcher shown on organization and project pages."""
    if current is not None:
        request.session[CURRENT_ORG_SESSION_KEY] = str(current.public_id)
    return {"switch_organizations": organizations_for_user(request.user), "current_organization": current}


# --- Organization ------------------------------------------------------------------

@login_required
def organization_create(request: HttpRequest) -> HttpResponse:
    """A new organization, its creator its owner. Not an object page: who may not create
    one gets 403 (there is nothing to hide), as the switcher shows no link to them."""
    if not can_create_organization(request.user):
        raise PermissionDenied("Only administrators can create organizations.")
    form = OrganizationCreateForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            organization = services.organization_create(
                name=data["name"], slug=data["slug"], tier=data["tier"],
                billing_timezone=data["billing_timezone"], actor=request.user, request=request)
        except ValidationError as exc:
            for field, errors in exc.message_dict.items():
                form.add_error(field if field in form.fields else None, errors)
        else:
            messages.success(request, f"Organization {organization.name} created; you are its owner.")
            return redirect("orgs:organization-detail", org_id=organization.public_id)
    return render(request, "orgs/organization_create.html", {"form": form},
                  status=400 if form.is_bound and form.errors else 200)


@login_required
def organization_edit(request: HttpRequest, org_id) -> HttpResponse:
    organization = get_organization_for_user(request.user, org_id, manage=True)
    form = OrganizationForm(request.POST or None, instance=type(organization).objects.get(pk=organization.pk))
    if request.method == "POST" and form.is_valid():
        changed = services.organization_update(
            organization=organization, actor=request.user, request=request,
            **{f: form.cleaned_data[f] for f in services.ORGANIZATION_FIELDS},
        )
        messages.success(request, saved_message(changed, form=form))
        return redirect("orgs:organization-detail", org_id=organization.public_id)
    return render(request, "orgs/organization_edit.html", {
        "organization": organization, "form": form, **switcher_context(request, organization)})


@login_required
def project_create(request: HttpRequest, org_id) -> HttpResponse:
    organization = get_organization_for_user(request.user, org_id, manage=True)
    form = ProjectCreateForm(request.POST or None, organization=organization)
    if request.method == "POST" and form.is_valid():
        try:
            project = services.project_create(
                organization=organization, name=form.cleaned_data["name"],
                environment=form.cleaned_data["environment"], actor=request.user, request=request)
        except ValidationError as exc:
            form.add_error(None, validation_message(exc))
        else:
            messages.success(request, f"Project {project.name} created.")
            return redirect("orgs:project-detail", project_id=project.public_id)
    return render(request, "orgs/project_create.html", {
        "organization": organization, "form": form, **switcher_context(request, organization)})


# --- Project -----------------------------------------------------------------------

@login_required
def project_limit_remove(request: HttpRequest, project_id) -> HttpResponse:
    project = get_project_for_user(request.user, project_id, need=Need.MANAGE)

    def remove(data) -> str:
        services.project_model_limit_remove(limit=data["limit"], actor=request.user, request=request)
        return "Override removed; the tier defaults apply."

    return post_action(request, ModelLimitRemoveForm(request.POST, project=project), remove,
                        back=project_back(project, "#limits"))


@login_required
def service_account_create(request: HttpRequest, project_id) -> HttpResponse:
    project = get_project_for_user(request.user, project_id, need=Need.MANAGE)

    def create(data) -> str:
        services.service_account_create(project=project, name=data["name"], openai_id=data["openai_id"],
                                        actor=request.user, request=request)
        return f"Service account {data['name']} created."

    return post_action(request, ServiceAccountForm(request.POST, project=project), create,
                        back=project_back(project, "#service-accounts"))


# --- Audit log -------------------------------------------------------------------

def _audit_organization(request: HttpRequest, org_id):
    """Organization members (owners and readers) read the audit log; project-only
    members do not (it covers the whole organization)."""
    access = organization_access_for_user(request.user, org_id)
    if access.role is None:
        raise PermissionDenied("Only organization owners and readers can read the audit log.")
    return access.organization


def _filtered_events(request: HttpRequest, organization):
    form = AuditFilterForm(request.GET or None, projects=organization.projects.order_by("name"),
                           actions=audit_actions(organization=organization))
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
    rows = list(events[start:start + AUDIT_PAGE_SIZE + 1])
    context = {
        "organization": organization, "form": form, "events": rows[:AUDIT_PAGE_SIZE],
        "page": page, "has_next": len(rows) > AUDIT_PAGE_SIZE, "query": query.urlencode(),
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
    header = ["occurred_at_utc", "actor", "action", "target_type", "target_id", "target",
              "project", "ip_address", "detail"]

    def rows():
        yield writer.writerow(header)
        for event in events.iterator(chunk_size=500):
            yield writer.writerow([
                event.occurred_at.isoformat(), event.actor_label, event.action, event.target_type,
                event.target_id, _csv_safe(redact(event.target_label)),
                _csv_safe(event.project.name if event.project else ""),
                # Rows written before redaction by shape existed are redacted as they are read.
                event.ip_address or "", _csv_safe(redact(_json(event.detail))),
            ])

    response = StreamingHttpResponse(rows(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="audit-{organization.slug}.csv"'
    return response


def _json(value) -> str:
    import json

    return json.dumps(value, sort_keys=True, default=str, ensure_ascii=False)


def _csv_safe(value: str) -> str:
    """Neutralise spreadsheet formulas (CSV injection) in free-text cells."""
    if value and value[0] in "=+-@\t\r":
        return "'" + value
    return value
