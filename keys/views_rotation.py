"""The Rotation page of an organization: every active key by due date, with its stage and
the last reminder sent (keys/reminders.py has the rules).

Organization owners and readers see every key; someone with project roles only sees the
keys of their projects, as the organization page shows them only those projects' spend
(keys.access.api_keys_for_user is the one scope). Outsiders get 404; writes get 405.
"""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone

from orgs.access import Need, organization_access_for_user
from orgs.views.common import read_only, switcher_context

from .access import api_keys_for_user
from .reminders import FIRST_REMINDER_DAYS, organization_zone, rotation_schedule


@login_required
def rotation(request: HttpRequest, org_id) -> HttpResponse:
    access = organization_access_for_user(request.user, org_id)
    organization = access.organization
    if (response := read_only(request)) is not None:
        return response
    now = timezone.now()
    rows = rotation_schedule(
        api_keys=api_keys_for_user(request.user, Need.READ).filter(organization=organization),
        now=now,
    )
    return render(
        request,
        "keys/rotation.html",
        {
            "organization": organization,
            "rows": rows,
            "zone": organization_zone(organization),
            "whole_organization": access.role is not None,
            "overdue": sum(1 for r in rows if r.tone == "fail"),
            "soon": sum(1 for r in rows if r.tone == "warn"),
            "first_reminder_days": FIRST_REMINDER_DAYS,
            "here": "Rotation",
            **switcher_context(request, organization),
        },
    )
