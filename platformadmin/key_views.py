"""Key pages that call the OpenAI client layer: add (optional live check), detail, test.

They compose keys (the stored key, its history, its audited test record) with the client
layer (``models_list``, the circuit breaker), so they live above both apps; their URLs keep
their names in the keys namespace (``keys:key-create``, ``keys:key-detail``,
``keys:key-test``; platformadmin/urls.py mounts them there).

Where a plaintext key passes: the add view's POST (rendered once on the creation page,
``Cache-Control: no-store``, hidden from error reports with ``sensitive_post_parameters``).
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_post_parameters, sensitive_variables

from keys import services
from keys.access import api_key_access_for_user, get_api_key_for_user
from keys.forms import APIKeyCreateForm, apply_validation_errors
from keys.models import APIKey
from keys.selectors import api_key_history, api_key_is_overdue, api_key_rotation_due
from orgs.access import Need, get_project_for_user
from platformadmin.openai.breaker import breaker_state_for_key
from platformadmin.openai.services import models_list


def key_test_run(request: HttpRequest, api_key: APIKey) -> dict:
    """Call models.list() with the key through the client layer; audited as key.test."""
    result = models_list(api_key=api_key)
    services.api_key_record_test(
        api_key=api_key,
        ok=result.ok,
        request_id=result.request_id,
        message=result.message,
        actor=request.user,
        request=request,
    )
    return {
        "ok": result.ok,
        "request_id": result.request_id,
        "model_ids": list(result.model_ids)[:50],
        "message": result.message,
    }


@login_required
@never_cache
@sensitive_post_parameters("secret")
@sensitive_variables("secret")
def key_create(request: HttpRequest, project_id) -> HttpResponse:
    project = get_project_for_user(request.user, project_id, need=Need.MANAGE)
    form = APIKeyCreateForm(request.POST or None, project=project)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        secret = data["secret"]  # plaintext: sealed by the service, shown once below
        try:
            api_key = services.api_key_add(
                actor=request.user,
                request=request,
                organization=project.organization,
                project=project,
                name=data["name"],
                kind=data["kind"],
                service_account=data["service_account"],
                provider=data["provider"],
                permissions=data["permissions"],
                base_url=data["base_url"] or "",
                azure_endpoint=data["azure_endpoint"] or "",
                azure_api_version=data["azure_api_version"] or "",
                secret=secret,
            )
        except ValidationError as exc:
            apply_validation_errors(form, exc)
        else:
            test = key_test_run(request, api_key) if data["test_connection"] else None
            # The one time the full value is rendered after creation.
            return render(
                request,
                "keys/key_created.html",
                {
                    "project": project,
                    "organization": project.organization,
                    "api_key": api_key,
                    "secret": secret,
                    "test": test,
                },
            )
    return render(
        request,
        "keys/key_create.html",
        {
            "project": project,
            "organization": project.organization,
            "form": form,
        },
        status=400 if form.is_bound and form.errors else 200,
    )


@login_required
def key_detail(request: HttpRequest, key_id) -> HttpResponse:
    access = api_key_access_for_user(request.user, key_id)
    api_key = access.api_key
    if request.method not in ("GET", "HEAD"):
        return HttpResponseNotAllowed(["GET", "HEAD"])
    project = api_key.project
    can_manage, can_use = access.can(Need.MANAGE), access.can(Need.USE)
    return render(
        request,
        "keys/key_detail.html",
        {
            "api_key": api_key,
            "project": project,
            "organization": api_key.organization,
            "rotation_due": api_key_rotation_due(api_key=api_key),
            "overdue": api_key_is_overdue(api_key=api_key),
            "age_days": (timezone.now() - api_key.created_at).days,
            "history": api_key_history(api_key=api_key),
            "breaker": breaker_state_for_key(api_key),
            "can_manage": can_manage,
            "can_use": can_use,
            "is_org_owner": access.org_role == "owner",  # may delete it at OpenAI (sync)
        },
    )


@login_required
def key_test(request: HttpRequest, key_id) -> HttpResponse:
    """Test connection (POST). With HTMX, only the result fragment comes back."""
    api_key = get_api_key_for_user(request.user, key_id, need=Need.USE)
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    if not api_key.is_active:
        test = {
            "ok": False,
            "request_id": None,
            "model_ids": [],
            "message": f"This key is {api_key.get_status_display().lower()}: it is not used for calls.",
        }
    else:
        test = key_test_run(request, api_key)
    if request.htmx:
        return render(
            request, "keys/key_detail.html#test-result", {"test": test, "api_key": api_key}
        )
    # The message names the request id already (platformadmin.openai.services builds it so): add it
    # only when it does not, so the id never shows twice.
    rid = test.get("request_id")
    (messages.success if test["ok"] else messages.error)(
        request,
        f"Test connection: {test['message']}"
        + (f" (request id {rid})" if rid and rid not in test["message"] else ""),
    )
    return redirect("keys:key-detail", key_id=api_key.public_id)
