"""The organization page (with month-to-date spend), the project page, its readiness
checklist, its settings and model limits: they compose orgs (the project, its members and
settings), keys (the key list with rotation due dates) and usage (spend, the checklist's
usage row, the usage links, the model catalog the settings and limits are checked
against), so they live above those apps. Mounted under the orgs URLs (URL names
unchanged) by platformadmin/urls.py.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import NoReverseMatch, reverse

from keys.selectors import api_key_is_overdue, api_key_rotation_due, project_keys
from orgs import services
from orgs.access import (
    Need,
    ProjectAccess,
    get_project_for_user,
    organization_access_for_user,
    project_access_for_user,
    projects_for_user,
)
from orgs.forms import (
    ModelLimitForm,
    OrganizationInviteForm,
    ProjectCreateForm,
    ProjectInviteForm,
    ProjectSettingsForm,
    ServiceAccountForm,
)
from orgs.models import Organization, OrganizationMembership, Project
from orgs.selectors import (
    organization_members,
    organization_open_invitations,
    organization_projects_for_user,
    project_members,
    project_open_invitations,
)
from orgs.views.common import (
    post_action,
    project_back,
    read_only,
    saved_message,
    switcher_context,
    validation_message,
)
from usage.selectors import (
    SpendSummary,
    catalog_models,
    organization_spend_summary,
    projects_spend_summary,
)

from .checklist import project_checklist


def _project_page_context(request: HttpRequest, access: ProjectAccess) -> dict:
    project = access.project
    keys = list(project_keys(project=project))
    for key in keys:
        key.project = project  # the page's project: no query per key for its rotation period
        key.rotation_due = api_key_rotation_due(api_key=key)
        key.overdue = api_key_is_overdue(api_key=key)
    can_manage = access.can(Need.MANAGE)
    return {
        "project": project,
        "organization": project.organization,
        "keys": keys,
        "service_accounts": project.service_accounts.all(),
        "members": project_members(project=project),
        "model_limits": project.model_limits.order_by("model_id"),
        "can_manage": can_manage,
        "can_use": access.can(Need.USE),
        "is_org_owner": access.is_org_owner,
        "project_role": access.project_role,
        "org_role": access.org_role,
        "checklist": project_checklist(project=project, can_manage=can_manage),
        "usage_links": _usage_links(project, can_manage=can_manage),
        **switcher_context(request, project.organization),
    }


def _usage_links(project: Project, *, can_manage: bool) -> list[tuple[str, str]]:
    """The usage pages' buttons; ingestion tokens only for those who may manage them
    (a reader or member would follow it to a 403)."""
    links = []
    pages = [("usage:project-usage", "Usage and spend")]
    if can_manage:
        pages.append(("usage:ingestion-tokens", "Ingestion tokens"))
    for name, label in pages:
        try:
            links.append((reverse(name, kwargs={"project_id": project.public_id}), label))
        except NoReverseMatch:  # the usage pages may not be installed
            continue
    return links


@login_required
def project_detail(request: HttpRequest, project_id) -> HttpResponse:
    access = project_access_for_user(request.user, project_id)
    project = access.project
    if (response := read_only(request)) is not None:
        return response
    context = _project_page_context(request, access)
    context.update(
        {
            "service_account_form": ServiceAccountForm(project=project),
            "invite_form": ProjectInviteForm(),
            "invitations": project_open_invitations(project=project)
            if context["can_manage"]
            else [],
            "limit_form": ModelLimitForm(catalog_ids=set()),  # shown only; the POST view checks
            "member_roles": project.memberships.model.Role.choices,
        }
    )
    return render(request, "orgs/project_detail.html", context)


@login_required
def project_checklist_view(request: HttpRequest, project_id) -> HttpResponse:
    access = project_access_for_user(request.user, project_id)
    project = access.project
    if (response := read_only(request)) is not None:
        return response
    rows = project_checklist(project=project, can_manage=access.can(Need.MANAGE))
    context = {
        "project": project,
        "organization": project.organization,
        "checklist": rows,
        **switcher_context(request, project.organization),
    }
    if request.htmx:
        return render(request, "orgs/project_checklist.html#checklist", context)
    return render(request, "orgs/project_checklist.html", context)


def _catalog_ids() -> set[str]:
    """Every catalog model id, inactive ones too: what a limit may name."""
    return {m.model_id for m in catalog_models(include_inactive=True)}


@login_required
def project_settings(request: HttpRequest, project_id) -> HttpResponse:
    project = get_project_for_user(request.user, project_id, need=Need.MANAGE)
    # The form works on a copy so the service can compare old and new values.
    form = ProjectSettingsForm(
        request.POST or None,
        instance=Project.objects.get(pk=project.pk),
        catalog=list(catalog_models(include_inactive=True)),
    )
    if request.method == "POST" and form.is_valid():
        try:
            changed = services.project_update_settings(
                project=project,
                actor=request.user,
                request=request,
                **{f: form.cleaned_data[f] for f in services.PROJECT_SETTINGS_FIELDS},
            )
        except ValidationError as exc:
            form.add_error(None, validation_message(exc, form=form, model=Project))
        else:
            messages.success(request, saved_message(changed, form=form))
            return redirect("orgs:project-detail", project_id=project.public_id)
    return render(
        request,
        "orgs/project_settings.html",
        {
            "project": project,
            "organization": project.organization,
            "form": form,
            **switcher_context(request, project.organization),
        },
    )


@login_required
def project_limit_set(request: HttpRequest, project_id) -> HttpResponse:
    project = get_project_for_user(request.user, project_id, need=Need.MANAGE)

    def set_limit(data) -> str:
        services.project_model_limit_set(
            project=project,
            model_id=data["model_id"],
            rpm=data["rpm"],
            tpm=data["tpm"],
            actor=request.user,
            request=request,
        )
        return f"Limit for {data['model_id']} saved."

    return post_action(
        request,
        ModelLimitForm(request.POST, catalog_ids=_catalog_ids()),
        set_limit,
        back=project_back(project, "#limits"),
    )


def organization_spend_mtd(
    *, user, organization: Organization, role: str | None
) -> tuple[SpendSummary, bool]:
    """Month-to-date spend the user may see, and whether it is the whole organization's.

    Organization owners and readers see every project's spend; anyone else (a project
    member or owner) only the sum over their own projects: the others 404 for them, so
    their spend must not show either. Unpriced calls are counted, never added as $0.
    ``role``: the user's organization role, from the page's access object.
    """
    if role is not None:
        return organization_spend_summary(organization=organization), True
    visible = projects_for_user(user, Need.READ).filter(organization=organization).values("pk")
    return projects_spend_summary(organization=organization, projects=visible), False


@login_required
def organization_detail(request: HttpRequest, org_id) -> HttpResponse:
    access = organization_access_for_user(request.user, org_id)
    organization, role = access.organization, access.role
    if (response := read_only(request)) is not None:
        return response
    spend, whole_organization = organization_spend_mtd(
        user=request.user, organization=organization, role=role
    )
    return render(
        request,
        "orgs/organization_detail.html",
        {
            "organization": organization,
            "role": role,
            "is_owner": role == OrganizationMembership.Role.OWNER,
            "is_member": role is not None,
            "projects": organization_projects_for_user(
                user=request.user, organization=organization
            ),
            "members": organization_members(organization=organization) if role else [],
            "spend": spend,
            "spend_scope": "organization" if whole_organization else "your projects",
            "project_form": ProjectCreateForm(organization=organization),
            "invite_form": OrganizationInviteForm(organization=organization),
            "invitations": (
                organization_open_invitations(organization=organization)
                if role == OrganizationMembership.Role.OWNER
                else []
            ),
            "roles": OrganizationMembership.Role.choices,
            **switcher_context(request, organization),
        },
    )
