"""Key pages that need keys alone: reveal (password), rotate, revoke.

The add page (optional live check), the key page (circuit-breaker state) and Test connection
compose the client layer, so they live above this app in platformadmin/key_views.py (URL
names unchanged: ``keys:key-create``, ``keys:key-detail``, ``keys:key-test``).

Where a plaintext key passes here: the reveal view's POST (rendered once). It sends
``Cache-Control: no-store``; every view taking a secret or a password hides it from
error reports with ``sensitive_post_parameters``.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_post_parameters, sensitive_variables

from orgs.access import Need, organization_role

from . import services
from .access import get_api_key_for_user
from .forms import APIKeyRevokeForm, APIKeyRotateForm, PasswordConfirmForm, apply_validation_errors
from .selectors import organization_admin_key


@sensitive_variables("extra")
def _key_form_page(request: HttpRequest, template: str, api_key, form, **extra) -> HttpResponse:
    """A key's form page with the key, its project and organization (the breadcrumbs);
    400 when a posted form has errors, so a refused post never answers 200. ``extra`` may
    hold the revealed secret: hidden from error reports like the view's own ``secret``."""
    return render(
        request,
        template,
        {
            "api_key": api_key,
            "project": api_key.project,
            "organization": api_key.organization,
            "form": form,
            **extra,
        },
        status=400 if form.is_bound and form.errors else 200,
    )


@login_required
@never_cache
@sensitive_post_parameters("password")
@sensitive_variables("secret")
def key_reveal(request: HttpRequest, key_id) -> HttpResponse:
    """Project owners (and organization owners) re-enter their password to see the key."""
    api_key = get_api_key_for_user(request.user, key_id, need=Need.MANAGE)
    form = PasswordConfirmForm(request.POST or None, request=request)
    if request.method == "POST" and form.is_valid():
        try:
            secret = services.api_key_reveal(api_key=api_key, actor=request.user, request=request)
        except (ValidationError, services.SecretUnavailable) as exc:
            form.add_error(None, exc.messages if isinstance(exc, ValidationError) else str(exc))
        else:
            # rendered once, in this response only
            return _key_form_page(request, "keys/key_reveal.html", api_key, form, secret=secret)
    if request.method == "POST" and "password" in form.errors:
        services.audit_key(
            "key.reveal_refused",
            api_key,
            actor=request.user,
            request=request,
            detail={"reason": "wrong password"},
        )
    return _key_form_page(request, "keys/key_reveal.html", api_key, form)


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
            api_key = services.api_key_rotate(
                api_key=api_key,
                secret=form.cleaned_data["secret"],
                actor=request.user,
                request=request,
            )
        except ValidationError as exc:
            apply_validation_errors(form, exc)
        else:
            messages.success(
                request, f"Rotated: {old_hint} → {api_key.hint}. Revoke the old value at OpenAI."
            )
            return redirect("keys:key-detail", key_id=api_key.public_id)
    return _key_form_page(request, "keys/key_rotate.html", api_key, form)


@login_required
def key_revoke(request: HttpRequest, key_id) -> HttpResponse:
    api_key = get_api_key_for_user(request.user, key_id, need=Need.MANAGE)
    form = APIKeyRevokeForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        services.api_key_revoke(
            api_key=api_key, actor=request.user, request=request, reason=form.cleaned_data["reason"]
        )
        messages.success(
            request, f"Key {api_key.hint} revoked: nothing in the console can use it any more."
        )
        if api_key.openai_key_id and organization_admin_key(organization=api_key.organization):
            # The Admin API sync can delete it at OpenAI too: owners confirm it there.
            if organization_role(request.user, api_key.organization) == "owner":
                return redirect("sync:push-key-delete", key_id=api_key.public_id)
            messages.info(
                request,
                "It still works at OpenAI: ask an organization owner to delete it there.",
            )
        return redirect("keys:key-detail", key_id=api_key.public_id)
    return _key_form_page(request, "keys/key_revoke.html", api_key, form)
