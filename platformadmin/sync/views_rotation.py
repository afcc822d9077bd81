"""Pages of the Admin API sync: rotation of service-account keys (docs/sync.md,
"Rotation").

The Rotations page lists an organization's rotations with their steps, grace deadline and
errors; organization owners and readers see it (project-only members 403, outsiders 404).
Only owners start a rotation, confirmed, audited (``key.rotation_start``).
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed
from django.shortcuts import redirect, render
from django.urls import path, reverse

from keys.models import APIKey
from orgs.access import organization_access_for_user
from orgs.views.common import read_only, switcher_context

from .models import KeyRotation
from .rotation import (
    OPEN_STEPS,
    RotationRefused,
    rotatable_keys,
    rotation_advance,
    rotation_start,
    rotations_for_organization,
)

PAGE_SIZE = 100
STEPS = [
    KeyRotation.Step.STARTED,
    KeyRotation.Step.CREATED,
    KeyRotation.Step.STORED,
    KeyRotation.Step.VERIFIED,
    KeyRotation.Step.PROMOTED,
    KeyRotation.Step.DONE,
]


def _member_access(request: HttpRequest, org_id, *, manage: bool = False):
    access = organization_access_for_user(request.user, org_id)
    if access.role is None:  # project roles only: rotations span the organization
        raise PermissionDenied("Only organization owners and readers see key rotations.")
    if manage and not access.is_owner:
        raise PermissionDenied("Only organization owners can rotate keys through OpenAI.")
    return access


@login_required
def rotations_page(request: HttpRequest, org_id) -> HttpResponse:
    access = _member_access(request, org_id)
    if refused := read_only(request):  # after the access check: outsiders get 404 first
        return refused
    organization = access.organization
    rows = list(rotations_for_organization(organization=organization)[:PAGE_SIZE])
    candidates = rotatable_keys(organization=organization) if access.is_owner else []
    busy = {r.service_account_id for r in rows if r.step in OPEN_STEPS}
    return render(
        request,
        "sync/rotation_page.html",
        {
            "organization": organization,
            "access": access,
            "rotations": [(r, _progress(r)) for r in rows],
            "candidates": [k for k in candidates if k.service_account_id not in busy],
            "selected": request.GET.get("key", ""),
            "page_size": PAGE_SIZE,
            **switcher_context(request, organization),
        },
    )


def _progress(rotation: KeyRotation) -> list[tuple[str, str]]:
    """(label, state) per step: done / current / todo / failed, for the step list."""
    if rotation.step == KeyRotation.Step.FAILED:
        reached = -1
    else:
        reached = STEPS.index(rotation.step)
    out = []
    for i, step in enumerate(STEPS):
        if rotation.step == KeyRotation.Step.FAILED:
            state = "todo"
        elif i < reached or rotation.step == KeyRotation.Step.DONE:
            state = "done"
        elif i == reached:
            state = "current"
        else:
            state = "todo"
        out.append((step.label, state))
    return out


@login_required
def rotation_start_view(request: HttpRequest, org_id) -> HttpResponse:
    access = _member_access(request, org_id, manage=request.method == "POST")
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    organization = access.organization
    back = reverse("sync:rotations", kwargs={"org_id": organization.public_id})
    raw = (request.POST.get("api_key") or "").strip()
    api_key = None
    if raw:
        try:
            api_key = (
                APIKey.objects.select_related("organization", "project", "service_account")
                .defer("secret")
                .filter(organization=organization, public_id=raw)
                .first()
            )
        except ValidationError:  # not a UUID
            api_key = None
    if api_key is None:
        messages.error(request, "Key: choose one of this organization's service-account keys.")
        return redirect(back)
    if request.POST.get("confirm") != "yes":
        messages.error(
            request,
            "Confirm: tick the box to confirm that a new key is created at OpenAI and the "
            "current one deleted there after the grace period.",
        )
        return redirect(f"{back}?key={api_key.public_id}")
    try:
        rotation = rotation_start(api_key=api_key, actor=request.user, request=request)
    except RotationRefused as exc:
        messages.error(request, f"Key: {' '.join(exc.messages)}")
        return redirect(back)
    # Run the first steps now, so the owner sees the result; a worker resumes it if this
    # request dies midway (the task queued on commit finds it locked or already promoted).
    advanced = rotation_advance(rotation_id=rotation.pk)
    if advanced is None:  # a worker took it first (the task queued on commit)
        messages.info(request, "The rotation is running in the background; reload to follow it.")
        return redirect(back)
    rotation = advanced
    if rotation.step == KeyRotation.Step.PROMOTED:
        messages.success(
            request,
            f"The new key of {rotation.service_account.name} is current. The old key "
            f"{api_key.hint} keeps working at OpenAI until "
            f"{rotation.grace_until:%Y-%m-%d %H:%M} UTC, then it is deleted there: redeploy "
            "the applications that use it before then.",
        )
    elif rotation.step == KeyRotation.Step.FAILED:
        messages.error(request, f"The rotation failed: {rotation.last_error}")
    else:
        messages.warning(
            request,
            f"The rotation stopped at '{rotation.get_step_display()}': {rotation.last_error} "
            "It is retried every 10 minutes.",
        )
    return redirect(back)


urlpatterns = [
    path("<uuid:org_id>/rotations/", rotations_page, name="rotations"),
    path("<uuid:org_id>/rotations/start/", rotation_start_view, name="rotation-start"),
]
