"""Pages of the Admin API sync: pushes to OpenAI and the audit-log pull button.

Only organization owners push (readers and project roles 403, outsiders 404): every push
page is a confirmation (GET) and a POST with CSRF and a ticked "yes" box. Upstream errors
are shown on the page with the fix (502), refusals naming the field (400), never a 500.
The service account's key is rendered once, in the POST's response only (no-store).
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseNotAllowed
from django.shortcuts import redirect, render
from django.urls import path, reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_post_parameters, sensitive_variables

from keys.access import get_api_key_for_user
from keys.selectors import organization_admin_key
from orgs.access import Need, organization_access_for_user, parse_public_id, project_access_for_user
from orgs.views.common import switcher_context
from platformadmin.openai.admin import AdminAPIError
from usage.models import Budget

from . import push
from .audit import audit_log_pull
from .models import SyncRun

OWNERS_ONLY = "Only organization owners can push changes to OpenAI."


def _owner_project(request: HttpRequest, project_id):
    access = project_access_for_user(request.user, project_id, need=Need.READ)
    if not access.is_org_owner:
        raise PermissionDenied(OWNERS_ONLY)
    return access.project


def _owner_key(request: HttpRequest, key_id):
    api_key = get_api_key_for_user(request.user, key_id, need=Need.READ)
    organization_access_for_user(request.user, api_key.organization.public_id, manage=True)
    return api_key


def _owner_budget(request: HttpRequest, budget_id):
    budget = (
        Budget.objects.select_related("organization", "project")
        .filter(public_id=parse_public_id(budget_id))
        .first()
    )
    if budget is None:
        raise Http404("Not found")
    access = organization_access_for_user(request.user, budget.organization.public_id)
    if not access.is_owner:
        raise PermissionDenied(OWNERS_ONLY)
    return budget


def _confirmed(request: HttpRequest) -> bool:
    return request.POST.get("confirm") == "yes"


def _page(request, template: str, context: dict, *, status: int = 200) -> HttpResponse:
    organization = context["organization"]
    return render(
        request,
        template,
        {
            "has_admin_key": organization_admin_key(organization=organization) is not None,
            **switcher_context(request, organization),
            **context,
        },
        status=status,
    )


def _run(request, func) -> tuple[object | None, str | None, dict, int]:
    """(result, error, field errors, status) of a push: refusals 400, upstream errors 502."""
    try:
        return func(), None, {}, 200
    except push.PushRefused as exc:
        return None, str(exc), {}, 400
    except ValidationError as exc:
        fields = exc.message_dict if hasattr(exc, "error_dict") else {"__all__": exc.messages}
        return None, " ".join(m for ms in fields.values() for m in ms), fields, 400
    except AdminAPIError as exc:
        return None, str(exc), {}, 502


def _confirm_page(
    request, *, title, organization, project=None, api_key=None, lines, button, confirm, danger
):
    return {
        "confirm_label": confirm,
        "danger": danger,
        "title": title,
        "organization": organization,
        "project": project,
        "api_key": api_key,
        "lines": lines,
        "button": button,
        "here": title,
    }


@login_required
def project_push_create(request: HttpRequest, project_id) -> HttpResponse:
    project = _owner_project(request, project_id)
    context = _confirm_page(
        request,
        title="Create at OpenAI",
        organization=project.organization,
        project=project,
        lines=[
            f"Creates an OpenAI project named “{project.name}” in the organization's OpenAI "
            "account and links it to this project.",
        ],
        button="Create the project at OpenAI",
        confirm="Yes, create it at OpenAI.",
        danger=False,
    )
    if project.openai_project_id:
        context["done"] = f"Already linked to OpenAI project {project.openai_project_id}."
    if request.method != "POST":
        return _page(request, "sync/push_confirm.html", context)
    if not _confirmed(request):
        context["error"] = "Tick “Yes, create it at OpenAI” to confirm."
        return _page(request, "sync/push_confirm.html", context, status=400)
    result, error, _, status = _run(
        request,
        lambda: push.project_push_create(project=project, actor=request.user, request=request),
    )
    if error:
        context["error"] = error
        return _page(request, "sync/push_confirm.html", context, status=status)
    messages.success(request, result.summary)
    return redirect("orgs:project-detail", project_id=project.public_id)


@login_required
@never_cache
@sensitive_post_parameters()
@sensitive_variables("created", "secret")
def service_account_push_create(request: HttpRequest, project_id) -> HttpResponse:
    project = _owner_project(request, project_id)
    context = {
        "organization": project.organization,
        "project": project,
        "here": "New service account at OpenAI",
        "name": (request.POST.get("name") or "")[:200],
    }
    if request.method != "POST":
        return _page(request, "sync/push_service_account.html", context)
    if not _confirmed(request):
        context["errors"] = {"confirm": ["Tick “Yes, create it at OpenAI” to confirm."]}
        return _page(request, "sync/push_service_account.html", context, status=400)
    created, error, fields, status = _run(
        request,
        lambda: push.service_account_push_create(
            project=project, name=request.POST.get("name", ""), actor=request.user, request=request
        ),
    )
    if error:
        context["error"] = error
        context["errors"] = fields
        return _page(request, "sync/push_service_account.html", context, status=status)
    secret = created.secret
    return _page(
        request,
        "sync/push_service_account_created.html",
        {**context, "created": created, "secret": secret, "here": created.account.name},
    )


@login_required
def rate_limits_push(request: HttpRequest, project_id) -> HttpResponse:
    project = _owner_project(request, project_id)
    context = {"organization": project.organization, "project": project, "here": "Rate limits"}
    status = 200
    if request.method == "POST":
        if not _confirmed(request):
            context["error"] = "Tick “Yes, set them at OpenAI” to confirm."
            status = 400
        else:
            result, error, fields, status = _run(
                request,
                lambda: push.project_rate_limit_push(
                    project=project,
                    rate_limit_id=request.POST.get("rate_limit", ""),
                    values=push.clean_rate_limit_values(request.POST),
                    actor=request.user,
                    request=request,
                ),
            )
            if not error:
                messages.success(request, result.summary)
                return redirect("sync:push-rate-limits", project_id=project.public_id)
            context.update(error=error, errors=fields, posted=request.POST)
    limits, list_error, _, list_status = _run(
        request, lambda: push.project_rate_limits_upstream(project=project)
    )
    context["limits"] = limits or []
    if list_error:
        context["list_error"] = list_error
        if request.method == "POST" and status == 200:
            status = list_status
    context["fields"] = push.RATE_LIMIT_FIELDS
    return _page(request, "sync/push_rate_limits.html", context, status=status)


@login_required
def key_push_delete(request: HttpRequest, key_id) -> HttpResponse:
    api_key = _owner_key(request, key_id)
    context = _confirm_page(
        request,
        title="Delete at OpenAI",
        organization=api_key.organization,
        project=api_key.project,
        api_key=api_key,
        lines=[
            f"Deletes the key {api_key.hint} ({api_key.openai_key_id or 'no OpenAI id'}) in "
            "OpenAI's account: every application still using it, inside or outside the "
            "console, stops working. This cannot be undone.",
        ],
        button="Delete the key at OpenAI",
        confirm="Yes, delete it at OpenAI.",
        danger=True,
    )
    if request.method != "POST":
        return _page(request, "sync/push_confirm.html", context)
    if not _confirmed(request):
        context["error"] = "Tick “Yes, delete it at OpenAI” to confirm."
        return _page(request, "sync/push_confirm.html", context, status=400)
    result, error, _, status = _run(
        request,
        lambda: push.api_key_push_delete(api_key=api_key, actor=request.user, request=request),
    )
    if error:
        context["error"] = error
        return _page(request, "sync/push_confirm.html", context, status=status)
    messages.success(request, result.summary)
    return redirect("keys:key-detail", key_id=api_key.public_id)


@login_required
def budget_push(request: HttpRequest, budget_id) -> HttpResponse:
    budget = _owner_budget(request, budget_id)
    plan, plan_error, _, plan_status = _run(request, lambda: push.budget_push_plan(budget=budget))
    context = {
        "organization": budget.organization,
        "project": budget.project,
        "budget": budget,
        "plan": plan,
        "error": plan_error,
        "here": "Budget at OpenAI",
    }
    if request.method != "POST" or plan_error:
        # A page that cannot push yet still opens (200) and says why; a POST is refused.
        return _page(
            request,
            "sync/push_budget.html",
            context,
            status=plan_status if request.method == "POST" else 200,
        )
    if not _confirmed(request):
        context["error"] = "Tick “Yes, set them at OpenAI” to confirm."
        return _page(request, "sync/push_budget.html", context, status=400)
    result, error, _, status = _run(
        request, lambda: push.budget_push(budget=budget, actor=request.user, request=request)
    )
    if error:
        context["error"] = error
        return _page(request, "sync/push_budget.html", context, status=status)
    messages.success(request, result.summary)
    return redirect("usage:budget-detail", budget_id=budget.public_id)


@login_required
def audit_log_pull_now(request: HttpRequest, org_id) -> HttpResponse:
    access = organization_access_for_user(request.user, org_id, manage=True)
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    run = audit_log_pull(organization=access.organization, actor=request.user)
    if run.status == SyncRun.Status.SUCCEEDED:
        created = run.report.get("created", 0)
        messages.success(
            request,
            f"Pulled OpenAI's audit log: {created} new event{'s' if created != 1 else ''}"
            + (
                f", {run.report.get('unchanged')} already recorded"
                if run.report.get("unchanged")
                else ""
            )
            + ".",
        )
    else:
        messages.error(request, " ".join(run.report.get("errors") or ["The pull failed."]))
    return redirect(reverse("orgs:audit-log", kwargs={"org_id": access.organization.public_id}))


urlpatterns = [
    path("projects/<uuid:project_id>/push/create/", project_push_create, name="push-project"),
    path(
        "projects/<uuid:project_id>/push/service-account/",
        service_account_push_create,
        name="push-service-account",
    ),
    path(
        "projects/<uuid:project_id>/push/rate-limits/",
        rate_limits_push,
        name="push-rate-limits",
    ),
    path("keys/<uuid:key_id>/push/delete/", key_push_delete, name="push-key-delete"),
    path("budgets/<uuid:budget_id>/push/", budget_push, name="push-budget"),
    path("<uuid:org_id>/audit-log-pull/", audit_log_pull_now, name="audit-log-pull"),
]
