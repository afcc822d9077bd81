"""Pages of the Admin API sync: the organization's admin key, "Sync now" and the history
of hierarchy pulls with their reports (see docs/sync.md).

Organization owners store, replace and test the admin key and start a pull; readers see
the key's hint, when it was last tested, and the history; a user with project roles only
gets 403 (the organization's OpenAI hierarchy is not theirs, as on the reconciliation
page), outsiders 404 as everywhere.
"""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseNotAllowed
from django.shortcuts import redirect, render
from django.urls import path, reverse
from django.views.decorators.debug import sensitive_post_parameters, sensitive_variables

from keys.selectors import api_key_history, organization_admin_key
from keys.services import api_key_record_test, organization_admin_key_store
from orgs.access import organization_access_for_user, parse_public_id
from orgs.views.common import read_only, switcher_context
from platformadmin.netguard import validate_outbound_url
from platformadmin.openai.admin import AdminAPIError, admin_call

from .models import SyncRun
from .pull import hierarchy_pull, hierarchy_runs

HISTORY_LENGTH = 50
KIND_LABELS = {
    "project": "Projects",
    "service_account": "Service accounts",
    "api_key": "API keys",
    "project_user": "Project users",
    "rate_limit": "Rate limits",
    "spend_limit": "Spend limits",
    "spend_alert": "Spend alerts",
}


def _access(request: HttpRequest, org_id, *, manage: bool = False):
    access = organization_access_for_user(request.user, org_id)
    if access.role is None:  # project roles only: the organization's hierarchy is not theirs
        raise PermissionDenied(
            "Only organization owners and readers see the organization's OpenAI sync."
        )
    if manage and not access.is_owner:
        raise PermissionDenied("Only organization owners can change the OpenAI admin key or sync.")
    return access


class AdminKeyForm(forms.Form):
    secret = forms.CharField(
        label="Admin key",
        strip=False,
        max_length=512,
        help_text="sk-admin-…, made under Organization settings › Admin keys at OpenAI. "
        "It is stored encrypted and never shown again; only its hint is.",
        widget=forms.PasswordInput(
            render_value=False, attrs={"autocomplete": "off", "spellcheck": "false"}
        ),
    )
    base_url = forms.URLField(
        label="Base URL (optional)",
        required=False,
        max_length=200,
        assume_scheme="https",
        help_text="Leave empty for https://api.openai.com/v1; set it for a proxy or the simulator.",
    )

    def clean_base_url(self) -> str:
        value = self.cleaned_data.get("base_url") or ""
        validate_outbound_url(value, label="Base URL")  # the same check runs at connect time
        return value


def _last_test(admin_key):
    if admin_key is None:
        return None
    return api_key_history(api_key=admin_key).filter(action="tested").first()


@sensitive_post_parameters("secret")
@login_required
def admin_key_page(request: HttpRequest, org_id) -> HttpResponse:
    access = _access(request, org_id, manage=request.method == "POST")
    organization = access.organization
    if request.method not in ("GET", "HEAD", "POST"):
        return HttpResponseNotAllowed(["GET", "POST"])
    form = AdminKeyForm(request.POST or None) if access.is_owner else None
    if request.method == "POST" and form.is_valid():
        try:
            stored = _store(request, organization, form.cleaned_data)
        except ValidationError as exc:
            for field, errors in exc.message_dict.items():
                form.add_error(field if field in form.fields else None, errors)
        else:
            messages.success(
                request,
                f"Admin key {stored.hint} stored (encrypted). Test it, then sync.",
            )
            return redirect(reverse("sync:admin-key", kwargs={"org_id": organization.public_id}))
    admin_key = organization_admin_key(organization=organization)
    return render(
        request,
        "sync/pull_admin_key.html",
        {
            "organization": organization,
            "access": access,
            "admin_key": admin_key,
            "last_test": _last_test(admin_key),
            "form": form,
            **switcher_context(request, organization),
        },
        status=400 if form is not None and form.errors else 200,
    )


@sensitive_variables("cleaned")
def _store(request, organization, cleaned: dict):
    return organization_admin_key_store(
        organization=organization,
        secret=cleaned["secret"],
        base_url=cleaned.get("base_url") or "",
        actor=request.user,
        request=request,
    )


@login_required
def admin_key_test(request: HttpRequest, org_id) -> HttpResponse:
    access = _access(request, org_id, manage=request.method == "POST")
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    organization = access.organization
    back = redirect(reverse("sync:admin-key", kwargs={"org_id": organization.public_id}))
    admin_key = organization_admin_key(organization=organization)
    if admin_key is None:
        messages.error(request, "No admin key is stored yet: store one (sk-admin-…) first.")
        return back
    try:
        page = admin_call(
            admin_key, "list OpenAI's projects", lambda api: api.projects.list(limit=1)
        )
    except AdminAPIError as exc:  # its message names the fix and carries no secret
        ok, message = False, str(exc)
    else:
        ok = True
        message = "OpenAI accepted the admin key: it can list the organization's projects" + (
            "." if page.data else " (there are none yet)."
        )
    api_key_record_test(
        api_key=admin_key,
        ok=ok,
        request_id=None,
        message=message,
        actor=request.user,
        request=request,
    )
    (messages.success if ok else messages.error)(request, message)
    return back


@login_required
def hierarchy_pull_now(request: HttpRequest, org_id) -> HttpResponse:
    access = _access(request, org_id, manage=request.method == "POST")
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    run = hierarchy_pull(organization=access.organization, actor=request.user)
    report = run.report
    summary = (
        f"{report.get('created', 0)} created, {report.get('updated', 0)} updated, "
        f"{report.get('deleted_upstream', 0)} deleted upstream, "
        f"{report.get('unchanged', 0)} unchanged"
    )
    if run.status == SyncRun.Status.SUCCEEDED:
        messages.success(request, f"Synced with OpenAI: {summary}.")
    elif run.status == SyncRun.Status.PARTIAL:
        messages.warning(request, f"Synced with errors ({summary}); see the errors below.")
    else:
        messages.error(request, " ".join(report.get("errors") or ["The sync failed."]))
    return redirect(
        reverse(
            "sync:run",
            kwargs={"org_id": access.organization.public_id, "run_id": run.public_id},
        )
    )


@login_required
def sync_history(request: HttpRequest, org_id) -> HttpResponse:
    access = _access(request, org_id)
    if refused := read_only(request):
        return refused
    organization = access.organization
    return render(
        request,
        "sync/pull_history.html",
        {
            "organization": organization,
            "access": access,
            "runs": list(hierarchy_runs(organization=organization, limit=HISTORY_LENGTH)),
            "has_admin_key": organization_admin_key(organization=organization) is not None,
            **switcher_context(request, organization),
        },
    )


@login_required
def sync_run(request: HttpRequest, org_id, run_id) -> HttpResponse:
    access = _access(request, org_id)
    if refused := read_only(request):
        return refused
    organization = access.organization
    run = (
        SyncRun.objects.filter(organization=organization, public_id=parse_public_id(run_id))
        .select_related("triggered_by")
        .first()
    )
    if run is None:
        raise Http404("Not found")
    return render(
        request,
        "sync/pull_run.html",
        {
            "organization": organization,
            "access": access,
            "run": run,
            "kinds": [
                (KIND_LABELS.get(kind, kind), counts)
                for kind, counts in (run.report.get("kinds") or {}).items()
            ],
            **switcher_context(request, organization),
        },
    )


urlpatterns = [
    path("<uuid:org_id>/admin-key/", admin_key_page, name="admin-key"),
    path("<uuid:org_id>/admin-key/test/", admin_key_test, name="admin-key-test"),
    path("<uuid:org_id>/pull/", hierarchy_pull_now, name="hierarchy-pull"),
    path("<uuid:org_id>/history/", sync_history, name="history"),
    path("<uuid:org_id>/runs/<uuid:run_id>/", sync_run, name="run"),
]
