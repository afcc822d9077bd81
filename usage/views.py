"""Usage pages: a project's usage and its ingestion tokens."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseNotAllowed
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods

from orgs.access import Need, get_project_for_user, project_access_for_user

from .forms import IngestionTokenForm
from .models import IngestionToken
from .selectors import (
    project_recent_usage_records,
    project_spend_month_to_date,
    project_usage_summary,
)
from .services import ingestion_token_create
from .services import ingestion_token_revoke as revoke_token


@login_required
def project_usage(request: HttpRequest, project_id) -> HttpResponse:
    """Recent records and 30-day totals; anyone who can read the project."""
    access = project_access_for_user(request.user, project_id, need=Need.READ)
    project = access.project
    if request.method not in ("GET", "HEAD"):  # after the access check: outsiders still get 404
        return HttpResponseNotAllowed(["GET", "HEAD"])
    return render(
        request,
        "usage/project_usage.html",
        {
            "project": project,
            "summary": project_usage_summary(project=project),
            "month": project_spend_month_to_date(project=project),
            "records": project_recent_usage_records(project=project, limit=50),
            "can_manage": access.can(Need.MANAGE),
        },
    )


@login_required
@require_http_methods(["GET", "POST"])
def ingestion_tokens(request: HttpRequest, project_id) -> HttpResponse:
    """List and create ingestion tokens; the new token is shown once, in this response."""
    project = get_project_for_user(request.user, project_id, need=Need.MANAGE)
    new_token = None
    form = IngestionTokenForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            row, new_token = ingestion_token_create(
                project=project,
                name=form.cleaned_data["name"],
                actor=request.user,
                request=request,
            )
        except ValidationError as exc:
            for fld, errs in exc.message_dict.items():
                form.add_error(fld if fld in form.fields else None, errs)
        else:
            messages.success(
                request, f"Token “{row.name}” created. Copy it now: it is not shown again."
            )
            form = IngestionTokenForm()
    response = render(
        request,
        "usage/ingestion_tokens.html",
        {
            "project": project,
            "form": form,
            "new_token": new_token,  # secret: rendered once, never stored in clear
            "tokens": IngestionToken.objects.filter(project=project).select_related("created_by"),
            "api_url": request.build_absolute_uri(reverse("api:usage-ingest")),
            "openapi_url": reverse("api:openapi"),
        },
    )
    if new_token:
        response["Cache-Control"] = "no-store"
    return response


@login_required
def ingestion_token_revoke(request: HttpRequest, project_id, token_id) -> HttpResponse:
    project = get_project_for_user(request.user, project_id, need=Need.MANAGE)
    token = IngestionToken.objects.filter(project=project, public_id=token_id).first()
    if token is None:
        raise Http404("Not found")
    if request.method != "POST":  # after the access check: outsiders get 404 whatever the method
        return HttpResponseNotAllowed(["POST"])
    revoke_token(token=token, actor=request.user, request=request)
    messages.success(request, f"Token “{token.name}” revoked: applications using it now get 403.")
    return redirect("usage:ingestion-tokens", project_id=project.public_id)
