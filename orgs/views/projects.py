"""Project actions that need no other app: model-limit removal, service accounts (the
project page, settings and limits compose keys and usage: platformadmin/project_views.py).

Write-only views check access before the HTTP method, so an outsider gets the same 404
whatever the method.
"""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse

from .. import services
from ..access import Need, get_project_for_user
from ..forms import ModelLimitRemoveForm, ServiceAccountForm
from .common import post_action, project_back


@login_required
def project_limit_remove(request: HttpRequest, project_id) -> HttpResponse:
    project = get_project_for_user(request.user, project_id, need=Need.MANAGE)

    def remove(data) -> str:
        services.project_model_limit_remove(
            limit=data["limit"], actor=request.user, request=request
        )
        return "Override removed; the tier defaults apply."

    return post_action(
        request,
        ModelLimitRemoveForm(request.POST, project=project),
        remove,
        back=project_back(project, "#limits"),
    )


@login_required
def service_account_create(request: HttpRequest, project_id) -> HttpResponse:
    project = get_project_for_user(request.user, project_id, need=Need.MANAGE)

    def create(data) -> str:
        services.service_account_create(
            project=project,
            name=data["name"],
            openai_id=data["openai_id"],
            actor=request.user,
            request=request,
        )
        return f"Service account {data['name']} created."

    return post_action(
        request,
        ServiceAccountForm(request.POST, project=project),
        create,
        back=project_back(project, "#service-accounts"),
    )
