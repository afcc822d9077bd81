"""Budget pages: the organization's list, create, edit, and one budget with its alerts.

Who: organization owners create and edit every budget of the organization; project
owners create and edit their project's budget; organization readers see every budget,
project members see their projects' budgets. An organization budget shows the whole
organization's spend, so only organization members (owners and readers) see it; someone
with project roles only gets 404 for it, as for anything they cannot read.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_http_methods

from orgs.access import (
    Need,
    organization_access_for_user,
    parse_public_id,
    project_access_for_user,
    projects_for_user,
)
from orgs.models import OrganizationMembership
from orgs.selectors import organization_projects_for_user
from orgs.views.common import read_only, switcher_context
from platformadmin.notifications.selectors import notifications_for_subject

from .budget_forms import ORGANIZATION_SCOPE, BudgetForm
from .budgets import (
    budget_create,
    budget_period,
    budget_status,
    budget_statuses,
    budget_update,
)
from .models import Budget, BudgetAlert

ALERT_HISTORY = 50


def _budget_for_user(user, budget_id, *, manage: bool) -> tuple[Budget, bool]:
    """The budget and whether the user may change it: 404 if they may not read it (an
    organization budget needs an organization role), 403 if ``manage`` and they may not."""
    budget = (
        Budget.objects.select_related("organization", "project")
        .filter(public_id=parse_public_id(budget_id))
        .first()
    )
    if budget is None or not user.is_authenticated:
        raise Http404("Not found")
    if budget.project_id:
        access = project_access_for_user(user, budget.project.public_id, need=Need.READ)
        can_manage = access.can(Need.MANAGE)
    else:
        access = organization_access_for_user(user, budget.organization.public_id)
        if access.role is None:  # project roles only: the organization's spend is not theirs
            raise Http404("Not found")
        can_manage = access.is_owner
    if manage and not can_manage:
        raise PermissionDenied("Your role does not allow you to change this budget.")
    return budget, can_manage


def _scopes(user, organization, *, is_owner: bool) -> list[tuple[str, str]]:
    """What this user may create a budget for: the organization (owners) and the
    projects they manage, each only if it has no budget yet."""
    taken = set(
        Budget.objects.filter(organization=organization).values_list("project_id", flat=True)
    )
    scopes = []
    if is_owner and None not in taken:
        scopes.append((ORGANIZATION_SCOPE, f"The whole organization ({organization.name})"))
    managed = projects_for_user(user, Need.MANAGE).filter(organization=organization)
    scopes += [
        (str(p.public_id), f"Project {p.name}")
        for p in managed.order_by("name")
        if p.pk not in taken
    ]
    return scopes


@login_required
def budget_list(request: HttpRequest, org_id) -> HttpResponse:
    """Every budget the user may read, with the period's spend, forecast and state."""
    access = organization_access_for_user(request.user, org_id)
    organization = access.organization
    if (response := read_only(request)) is not None:
        return response
    budgets = Budget.objects.filter(organization=organization).select_related(
        "organization", "project"
    )
    if access.role is None:  # project roles only: their projects' budgets
        budgets = budgets.filter(
            project__in=organization_projects_for_user(user=request.user, organization=organization)
        )
    budgets = list(budgets.order_by("project__name", "pk"))
    statuses = budget_statuses(budgets=budgets)
    can_create = access.is_owner or (
        projects_for_user(request.user, Need.MANAGE).filter(organization=organization).exists()
    )
    return render(
        request,
        "usage/budget_list.html",
        {
            "organization": organization,
            "statuses": statuses,
            "period": budget_period(organization=organization, now=timezone.now()),
            "can_create": can_create,
            "is_org_member": access.role is not None,
            **switcher_context(request, organization),
        },
    )


@login_required
@require_http_methods(["GET", "POST"])
def budget_create_view(request: HttpRequest, org_id) -> HttpResponse:
    access = organization_access_for_user(request.user, org_id)
    organization = access.organization
    is_owner = access.role == OrganizationMembership.Role.OWNER
    manages_a_project = (
        projects_for_user(request.user, Need.MANAGE).filter(organization=organization).exists()
    )
    if not (is_owner or manages_a_project):
        raise PermissionDenied("Only organization owners and project owners can create budgets.")
    scopes = _scopes(request.user, organization, is_owner=is_owner)
    initial = {}
    if request.GET.get("project"):
        initial["scope"] = request.GET["project"][:40]
    form = BudgetForm(request.POST or None, scopes=scopes, initial=initial)
    status = 200
    if request.method == "POST":
        if form.is_valid():
            data = form.cleaned_data
            project = None
            if data["scope"] != ORGANIZATION_SCOPE:
                project = (
                    projects_for_user(request.user, Need.MANAGE)
                    .filter(organization=organization, public_id=data["scope"])
                    .first()
                )
            try:
                if data["scope"] != ORGANIZATION_SCOPE and project is None:
                    raise ValidationError({"scope": "Choose one of the listed projects."})
                budget = budget_create(
                    organization=organization,
                    project=project,
                    amount=data["amount"],
                    thresholds=data["thresholds"],
                    hard_limit=data["hard_limit"],
                    forecast_alert=data["forecast_alert"],
                    actor=request.user,
                    request=request,
                )
            except ValidationError as exc:
                _form_errors(form, exc)
            else:
                messages.success(request, f"{budget} created.")
                return redirect("usage:budget-detail", budget_id=budget.public_id)
        status = 400
    return render(
        request,
        "usage/budget_form.html",
        {
            "organization": organization,
            "form": form,
            "budget": None,
            "no_scopes": not scopes,
            **switcher_context(request, organization),
        },
        status=status,
    )


def _form_errors(form, exc: ValidationError) -> None:
    for field, errors in exc.message_dict.items():
        form.add_error(field if field in form.fields else None, errors)


@login_required
@require_http_methods(["GET", "POST"])
def budget_edit(request: HttpRequest, budget_id) -> HttpResponse:
    budget, _ = _budget_for_user(request.user, budget_id, manage=True)
    initial = {
        "amount": f"{budget.amount:.2f}",
        "thresholds": ", ".join(str(t) for t in budget.thresholds),
        "hard_limit": budget.hard_limit,
        "forecast_alert": budget.forecast_alert,
        "is_active": budget.is_active,
    }
    form = BudgetForm(request.POST or None, initial=initial)
    status = 200
    if request.method == "POST":
        if form.is_valid():
            try:
                budget_update(
                    budget=budget,
                    changes={f: form.cleaned_data[f] for f in initial},
                    actor=request.user,
                    request=request,
                )
            except ValidationError as exc:
                _form_errors(form, exc)
            else:
                messages.success(request, f"{budget} saved.")
                return redirect("usage:budget-detail", budget_id=budget.public_id)
        status = 400
    return render(
        request,
        "usage/budget_form.html",
        {
            "organization": budget.organization,
            "project": budget.project,
            "form": form,
            "budget": budget,
            **switcher_context(request, budget.organization),
        },
        status=status,
    )


@login_required
def budget_detail(request: HttpRequest, budget_id) -> HttpResponse:
    """The period's status, its alerts and the notifications each caused."""
    budget, can_manage = _budget_for_user(request.user, budget_id, manage=False)
    if (response := read_only(request)) is not None:
        return response
    status = budget_status(budget=budget)
    alerts = list(
        BudgetAlert.objects.filter(budget=budget).order_by("-created_at", "-pk")[:ALERT_HISTORY]
    )
    sent = notifications_for_subject(
        organization=budget.organization,
        subject=f"budget:{budget.public_id}",
        periods={a.period for a in alerts},
    )
    for alert in alerts:
        stage = "forecast" if alert.kind == BudgetAlert.Kind.FORECAST else str(alert.threshold)
        alert.notifications = [n for n in sent if n.period == alert.period and n.stage == stage]
    return render(
        request,
        "usage/budget_detail.html",
        {
            "organization": budget.organization,
            "project": budget.project,
            "budget": budget,
            "status": status,
            "alerts": alerts,
            "can_manage": can_manage,
            # Organization owners push the budget to OpenAI (platformadmin/sync/push.py).
            "can_push_openai": OrganizationMembership.objects.filter(
                organization=budget.organization,
                user=request.user,
                role=OrganizationMembership.Role.OWNER,
            ).exists(),
            **switcher_context(request, budget.organization),
        },
    )
