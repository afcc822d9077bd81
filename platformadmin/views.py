"""Cross-cutting pages: the home page and a health check."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render

from orgs.access import can_create_organization, organizations_for_user, projects_for_user


@login_required
def home(request: HttpRequest) -> HttpResponse:
    """The organization switcher: organizations and projects the user can see."""
    return render(
        request,
        "platformadmin/home.html",
        {
            "organizations": organizations_for_user(request.user).order_by("name"),
            "projects": projects_for_user(request.user).order_by("organization__name", "name"),
            "current": request.session.get("current_organization", ""),
            "can_create_organization": can_create_organization(request.user),
        },
    )


def healthz(request: HttpRequest) -> JsonResponse:
    """Liveness + database check for load balancers."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return JsonResponse({"status": "ok"})
