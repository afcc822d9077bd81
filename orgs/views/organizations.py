"""Organization pages: create, edit, and a new project in one (the organization page
itself shows spend and lives in platformadmin/project_views.py).

Every view starts with an access helper from orgs/access.py (404 for outsiders, 403 for
an insufficient role), then form → service → redirect.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from .. import services
from ..access import can_create_organization, get_organization_for_user
from ..forms import OrganizationCreateForm, OrganizationForm, ProjectCreateForm
from .common import saved_message, switcher_context, validation_message


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
                name=data["name"],
                slug=data["slug"],
                tier=data["tier"],
                billing_timezone=data["billing_timezone"],
                actor=request.user,
                request=request,
            )
        except ValidationError as exc:
            for field, errors in exc.message_dict.items():
                form.add_error(field if field in form.fields else None, errors)
        else:
            messages.success(
                request, f"Organization {organization.name} created; you are its owner."
            )
            return redirect("orgs:organization-detail", org_id=organization.public_id)
    return render(
        request,
        "orgs/organization_create.html",
        {"form": form},
        status=400 if form.is_bound and form.errors else 200,
    )


@login_required
def organization_edit(request: HttpRequest, org_id) -> HttpResponse:
    organization = get_organization_for_user(request.user, org_id, manage=True)
    form = OrganizationForm(
        request.POST or None, instance=type(organization).objects.get(pk=organization.pk)
    )
    if request.method == "POST" and form.is_valid():
        changed = services.organization_update(
            organization=organization,
            actor=request.user,
            request=request,
            **{f: form.cleaned_data[f] for f in services.ORGANIZATION_FIELDS},
        )
        messages.success(request, saved_message(changed, form=form))
        return redirect("orgs:organization-detail", org_id=organization.public_id)
    return render(
        request,
        "orgs/organization_edit.html",
        {"organization": organization, "form": form, **switcher_context(request, organization)},
    )


@login_required
def project_create(request: HttpRequest, org_id) -> HttpResponse:
    organization = get_organization_for_user(request.user, org_id, manage=True)
    form = ProjectCreateForm(request.POST or None, organization=organization)
    if request.method == "POST" and form.is_valid():
        try:
            project = services.project_create(
                organization=organization,
                name=form.cleaned_data["name"],
                environment=form.cleaned_data["environment"],
                actor=request.user,
                request=request,
            )
        except ValidationError as exc:
            form.add_error(None, validation_message(exc))
        else:
            messages.success(request, f"Project {project.name} created.")
            return redirect("orgs:project-detail", project_id=project.public_id)
    return render(
        request,
        "orgs/project_create.html",
        {"organization": organization, "form": form, **switcher_context(request, organization)},
    )
