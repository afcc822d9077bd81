"""Key pages: add (shown once), detail, reveal (password), rotate, revoke.

Test connection composes the client layer and lives above this app, in
platformadmin/key_views.py (URL name unchanged: ``keys:key-test``).

Where a plaintext key passes: the add view's POST (rendered once on the creation page)
and the reveal view's POST (rendered once). Both responses send
``Cache-Control: no-store``; every view taking a secret or a password hides it from
error reports with ``sensitive_post_parameters``.
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

from orgs.access import Need, get_project_for_user
from orgs.audit import audit_log

# Exceptions to the layering, listed in [tool.importlinter]: the add page's optional live
# check and the detail page's breaker state come from the client layer above keys.
from platformadmin.key_views import key_test_run
from platformadmin.openai.breaker import breaker_state_for_key

from . import services
from .access import api_key_access_for_user, get_api_key_for_user
from .forms import APIKeyCreateForm, APIKeyRevokeForm, APIKeyRotateForm, PasswordConfirmForm
from .selectors import api_key_history, api_key_is_overdue, api_key_rotation_due


def _apply_errors(form, exc: ValidationError) -> None:
    if hasattr(exc, "error_dict"):
        for field, errors in exc.message_dict.items():
            form.add_error(field if field in form.fields else None, errors)
    else:
        form.add_error(None, exc.messages)


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
                actor=request.user, request=request,
                organization=project.organization, project=project, name=data["name"],
                kind=data["kind"], service_account=data["service_account"], provider=data["provider"],
                permissions=data["permissions"], base_url=data["base_url"] or "",
                azure_endpoint=data["azure_endpoint"] or "",
                azure_api_version=data["azure_api_version"] or "", secret=secret,
            )
        except ValidationError as exc:
            _apply_errors(form, exc)
        else:
            test = key_test_run(request, api_key) if data["test_connection"] else None
            # The one time the full value is rendered after creation.
            return render(request, "keys/key_created.html", {
                "project": project, "organization": project.organization, "api_key": api_key,
                "secret": secret, "test": test,
            })
    return render(request, "keys/key_create.html", {
        "project": project, "organization": project.organization, "form": form,
    }, status=400 if form.is_bound and form.errors else 200)


@login_required
def key_detail(request: HttpRequest, key_id) -> HttpResponse:
    access = api_key_access_for_user(request.user, key_id)
    api_key = access.api_key
    if request.method not in ("GET", "HEAD"):
        return HttpResponseNotAllowed(["GET", "HEAD"])
    project = api_key.project
    can_manage, can_use = access.can(Need.MANAGE), access.can(Need.USE)
    return render(request, "keys/key_detail.html", {
        "api_key": api_key, "project": project, "organization": api_key.organization,
        "rotation_due": api_key_rotation_due(api_key=api_key),
        "overdue": api_key_is_overdue(api_key=api_key),
        "age_days": (timezone.now() - api_key.created_at).days,
        "history": api_key_history(api_key=api_key),
        "breaker": breaker_state_for_key(api_key),
        "can_manage": can_manage, "can_use": can_use,
    })


@login_required
@never_cache
@sensitive_post_parameters("password")
@sensitive_variables("secret")
def key_reveal(request: HttpRequest, key_id) -> HttpResponse:
    """Project owners (and organization owners) re-enter their password to see the key."""
    api_key = get_api_key_for_user(request.user, key_id, need=Need.MANAGE)
    form = PasswordConfirmForm(request.POST or None, request=request)
    context = {"api_key": api_key, "project": api_key.project, "organization": api_key.organization,
               "form": form}
    if request.method == "POST" and form.is_valid():
        try:
            secret = services.api_key_reveal(api_key=api_key, actor=request.user, request=request)
        except (ValidationError, services.SecretUnavailable) as exc:
            form.add_error(None, exc.messages if isinstance(exc, ValidationError) else str(exc))
        else:
            context["secret"] = secret  # rendered once, in this response only
            return render(request, "keys/key_reveal.html", context)
    if request.method == "POST" and "password" in form.errors:
        audit_log(action="key.reveal_refused", actor=request.user, organization=api_key.organization,
                  project=api_key.project, target=api_key, request=request,
                  detail={"hint": api_key.hint, "reason": "wrong password"})
    return render(request, "keys/key_reveal.html", context,
                  status=400 if form.is_bound and form.errors else 200)


@login_required
@never_cache
@sensitive_post_parameters("secret")
@sensitive_variables("secret")
def key_rotate(request: HttpRequest, key_id) -> HttpResponse:
    api_key = get_api_key_for_user(request.user, key_id, need=Need.MANAGE)
    form = APIKeyRotateForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        old_hint = api_key.hint
        try:
            api_key = services.api_key_rotate(api_key=api_key, secret=form.cleaned_data["secret"],
                                              actor=request.user, request=request)
        except ValidationError as exc:
            _apply_errors(form, exc)
        else:
            messages.success(request, f"Rotated: {old_hint} → {api_key.hint}. Revoke the old value at OpenAI.")
            return redirect("keys:key-detail", key_id=api_key.public_id)
    return render(request, "keys/key_rotate.html", {
        "api_key": api_key, "project": api_key.project, "organization": api_key.organization,
        "form": form,
    }, status=400 if form.is_bound and form.errors else 200)


@login_required
def key_revoke(request: HttpRequest, key_id) -> HttpResponse:
    api_key = get_api_key_for_user(request.user, key_id, need=Need.MANAGE)
    form = APIKeyRevokeForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        services.api_key_revoke(api_key=api_key, actor=request.user, request=request,
                                reason=form.cleaned_data["reason"])
        messages.success(request, f"Key {api_key.hint} revoked: nothing in the console can use it any more.")
        return redirect("keys:key-detail", key_id=api_key.public_id)
    return render(request, "keys/key_revoke.html", {
        "api_key": api_key, "project": api_key.project, "organization": api_key.organization,
        "form": form,
    }, status=400 if form.is_bound and form.errors else 200)
