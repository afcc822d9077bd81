"""What the orgs views share: the POST-action helper, error and saved messages, the
organization switcher, the 405 answers. Also used by orgs/views_members.py and by the
composed pages in platformadmin/project_views.py.
"""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import FieldDoesNotExist, ValidationError
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.text import capfirst

from ..access import organizations_for_user

CURRENT_ORG_SESSION_KEY = "current_organization"


def post_only(request: HttpRequest) -> HttpResponse | None:
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    return None


def read_only(request: HttpRequest) -> HttpResponse | None:
    """Pages that only show things answer 405 to writes (after the access check); also
    used by the project page (platformadmin/project_views.py)."""
    if request.method not in ("GET", "HEAD"):
        return HttpResponseNotAllowed(["GET", "HEAD"])
    return None


def _form_errors(form) -> str:
    return "; ".join(
        f"{form.fields[name].label if name in form.fields else 'Form'}: {' '.join(errors)}"
        for name, errors in form.errors.items()
    )


def _field_label(name: str, form=None, model=None) -> str:
    """What a person reads for a field: the form's label, else the model's verbose name
    (capitalised), never the raw attribute name."""
    if form is not None and name in form.fields and form.fields[name].label:
        return str(form.fields[name].label)
    if model is not None:
        try:
            return capfirst(model._meta.get_field(name).verbose_name)
        except FieldDoesNotExist:
            pass
    return capfirst(name.replace("_", " "))


def validation_message(exc: ValidationError, *, form=None, model=None) -> str:
    if hasattr(exc, "message_dict"):
        return "; ".join(
            f"{_field_label(field, form, model)}: {' '.join(msgs)}"
            if field != "__all__"
            else " ".join(msgs)
            for field, msgs in exc.message_dict.items()
        )
    return " ".join(exc.messages)


def saved_message(changed, *, form) -> str:
    """ "Saved: Usage tier, Billing timezone." — labels, in the form's order."""
    if not changed:
        return "Nothing changed."
    return (
        f"Saved: {', '.join(_field_label(name, form) for name in form.fields if name in changed)}."
    )


def post_action(request: HttpRequest, form, action, *, back: str) -> HttpResponse:
    """A POST-only form action on an object page (the caller has checked access).

    ``action(cleaned_data)`` runs the service and returns the success message; invalid
    input or a ``ValidationError`` from the service becomes an error message naming the
    field. Either way the user goes back to ``back``.
    """
    if (response := post_only(request)) is not None:
        return response
    if not form.is_valid():
        messages.error(request, _form_errors(form))
    else:
        try:
            messages.success(request, action(form.cleaned_data))
        except ValidationError as exc:
            messages.error(request, validation_message(exc, form=form))
    return redirect(back)


def org_back(organization, anchor: str) -> str:
    return reverse("orgs:organization-detail", kwargs={"org_id": organization.public_id}) + anchor


def project_back(project, anchor: str) -> str:
    return reverse("orgs:project-detail", kwargs={"project_id": project.public_id}) + anchor


def switcher_context(request: HttpRequest, current=None) -> dict:
    """The organization switcher shown on organization and project pages.

    Remembers the organization for the "Usage" entry of the navigation; written only when
    it changed (an assignment marks the session modified: one UPDATE per page view)."""
    if current is not None and request.session.get(CURRENT_ORG_SESSION_KEY) != (
        chosen := str(current.public_id)
    ):
        request.session[CURRENT_ORG_SESSION_KEY] = chosen
    return {
        "switch_organizations": organizations_for_user(request.user),
        "current_organization": current,
    }
