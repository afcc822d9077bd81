"""Members by consent: invitations, role changes, removal with a confirmation step.

Nobody is attached to an organization or project without accepting: owners invite an
e-mail address, the invitee accepts through the one-time link (orgs/services.py). The
pages an owner sees never tell whether an address has an account.

Every view starts with an access helper (404 for outsiders, 403 for an insufficient
role) before looking at the HTTP method, like the views in orgs/views/.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import urlencode
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_post_parameters, sensitive_variables

from . import services
from .access import Need, get_organization_for_user, get_project_for_user
from .forms import (
    InvitationAccountForm,
    InvitationForm,
    OrganizationInviteForm,
    OrganizationMembershipForm,
    ProjectInviteForm,
    ProjectMembershipForm,
)
from .views.common import (
    org_back,
    post_action,
    post_only,
    project_back,
    switcher_context,
    validation_message,
)

# The backend that logs in an account just created from an invitation link (no password
# check to make: the form has just set it).
_LOGIN_BACKEND = "django.contrib.auth.backends.ModelBackend"


def _sent_message(email: str) -> str:
    """The same words whether or not the address has an account (no enumeration)."""
    return (
        f"Invitation sent to {email}. If the address is right, they can accept with their account "
        f"or create one from the link, within {services.invitation_expiry_days()} days."
    )


# --- Invite ---------------------------------------------------------------------------


@login_required
def organization_invite(request: HttpRequest, org_id) -> HttpResponse:
    """Org owners invite an address as organization owner/reader, or to chosen projects."""
    organization = get_organization_for_user(request.user, org_id, manage=True)

    def invite(data) -> str:
        services.invitation_create(
            organization=organization,
            email=data["email"],
            role=data["role"],
            projects=data["projects"],
            actor=request.user,
            request=request,
        )
        return _sent_message(data["email"].strip().lower())

    form = OrganizationInviteForm(request.POST, organization=organization)
    return post_action(request, form, invite, back=org_back(organization, "#invitations"))


@login_required
def project_invite(request: HttpRequest, project_id) -> HttpResponse:
    """Project owners (and org owners) invite an address to this project only."""
    project = get_project_for_user(request.user, project_id, need=Need.MANAGE)
    form = ProjectInviteForm(request.POST)

    def invite(data) -> str:
        services.invitation_create(
            organization=project.organization,
            email=data["email"],
            role=form.invitation_role(),
            projects=[project],
            actor=request.user,
            request=request,
        )
        return _sent_message(data["email"].strip().lower())

    return post_action(request, form, invite, back=project_back(project, "#members"))


@login_required
def invitation_update(request: HttpRequest, org_id) -> HttpResponse:
    """Resend an open invitation (new link, new expiry), or revoke it (``revoke`` in the POST)."""
    organization = get_organization_for_user(request.user, org_id, manage=True)

    def update(data) -> str:
        invitation = data["invitation"]
        if "revoke" in request.POST:
            services.invitation_revoke(invitation=invitation, actor=request.user, request=request)
            return f"Invitation of {invitation.email} revoked: its link no longer works."
        services.invitation_resend(invitation=invitation, actor=request.user, request=request)
        return f"Invitation sent again to {invitation.email}, with a new link (the old one no longer works)."

    form = InvitationForm(request.POST, organization=organization)
    return post_action(request, form, update, back=org_back(organization, "#invitations"))


# --- Existing members: role change, removal -------------------------------------------


@login_required
def organization_member_update(request: HttpRequest, org_id) -> HttpResponse:
    """Change a member's role (removal has its own confirmed step)."""
    organization = get_organization_for_user(request.user, org_id, manage=True)

    def update(data) -> str:
        membership = data["membership"]
        if not data["role"]:
            raise ValidationError({"role": "choose a role (to remove the member, press Remove)."})
        services.organization_membership_change_role(
            membership=membership, role=data["role"], actor=request.user, request=request
        )
        return f"{membership.user.get_username()} is now {data['role']}."

    form = OrganizationMembershipForm(request.POST, organization=organization)
    return post_action(request, form, update, back=org_back(organization, "#members"))


def _confirm_removal(
    request: HttpRequest, form, remove, *, back: str, context: dict
) -> HttpResponse:
    """POST only. Without ``confirm`` the page asks; with it the member is removed."""
    if (response := post_only(request)) is not None:
        return response
    if form.is_valid() and "confirm" not in request.POST:
        return render(
            request,
            "orgs/member_remove_confirm.html",
            {**context, "membership": form.cleaned_data["membership"], "back": back},
        )
    return post_action(request, form, remove, back=back)


@login_required
def organization_member_remove(request: HttpRequest, org_id) -> HttpResponse:
    organization = get_organization_for_user(request.user, org_id, manage=True)

    def remove(data) -> str:
        membership = data["membership"]
        services.organization_membership_remove(
            membership=membership, actor=request.user, request=request
        )
        return f"{membership.user.get_username()} removed from {organization.name}."

    form = OrganizationMembershipForm(request.POST, organization=organization)
    return _confirm_removal(
        request,
        form,
        remove,
        back=org_back(organization, "#members"),
        context={
            "organization": organization,
            "scope_name": organization.name,
            "action": reverse(
                "orgs:organization-member-remove", kwargs={"org_id": organization.public_id}
            ),
            **switcher_context(request, organization),
        },
    )


@login_required
def project_member_update(request: HttpRequest, project_id) -> HttpResponse:
    project = get_project_for_user(request.user, project_id, need=Need.MANAGE)

    def update(data) -> str:
        membership = data["membership"]
        if not data["role"]:
            raise ValidationError({"role": "choose a role (to remove the member, press Remove)."})
        services.project_membership_change_role(
            membership=membership, role=data["role"], actor=request.user, request=request
        )
        return f"{membership.user.get_username()} is now {data['role']}."

    form = ProjectMembershipForm(request.POST, project=project)
    return post_action(request, form, update, back=project_back(project, "#members"))


@login_required
def project_member_remove(request: HttpRequest, project_id) -> HttpResponse:
    project = get_project_for_user(request.user, project_id, need=Need.MANAGE)

    def remove(data) -> str:
        membership = data["membership"]
        services.project_membership_remove(
            membership=membership, actor=request.user, request=request
        )
        return f"{membership.user.get_username()} removed from the project."

    form = ProjectMembershipForm(request.POST, project=project)
    return _confirm_removal(
        request,
        form,
        remove,
        back=project_back(project, "#members"),
        context={
            "organization": project.organization,
            "project": project,
            "scope_name": project.name,
            "action": reverse(
                "orgs:project-member-remove", kwargs={"project_id": project.public_id}
            ),
            **switcher_context(request, project.organization),
        },
    )


# --- Accepting (public, token-based) ----------------------------------------------------


def _no_such_invitation() -> Http404:
    # Unknown, expired, used and revoked links all get the one 404 page: the link's
    # holder learns nothing about which, and nobody can probe tokens.
    return Http404("Not found")


@never_cache
@sensitive_post_parameters("password1", "password2")
@sensitive_variables("token")
def invitation_accept(request: HttpRequest, token: str) -> HttpResponse:
    """The link of the e-mail. Signed in with the invited address: accept. Signed out:
    sign in, or create an account for the invited address (username + password)."""
    try:
        invitation = services.invitation_for_token(token)
    except services.InvitationInvalid:
        raise _no_such_invitation() from None
    user = request.user
    matches = user.is_authenticated and services.invitation_email_matches(invitation, user)
    account_form = InvitationAccountForm(email=invitation.email)
    error = ""
    if request.method == "POST":
        try:
            if "create_account" in request.POST:
                if user.is_authenticated:
                    raise ValidationError({"username": "Sign out first to create another account."})
                account_form = InvitationAccountForm(request.POST, email=invitation.email)
                if account_form.is_valid():
                    new_user = services.invitation_accept_new_account(
                        token=token,
                        username=account_form.cleaned_data["username"],
                        password=account_form.cleaned_data["password1"],
                        request=request,
                    )
                    login(request, new_user, backend=_LOGIN_BACKEND)
                    messages.success(request, f"Welcome to {invitation.organization.name}.")
                    return redirect(
                        "orgs:organization-detail", org_id=invitation.organization.public_id
                    )
            elif not user.is_authenticated:
                return redirect(f"{reverse('login')}?{urlencode({'next': request.path})}")
            else:
                _, joined = services.invitation_accept(token=token, user=user, request=request)
                messages.success(
                    request,
                    f"You joined {', '.join(joined)}."
                    if joined
                    else "You were a member already; your role is unchanged.",
                )
                return redirect(
                    "orgs:organization-detail", org_id=invitation.organization.public_id
                )
        except services.InvitationInvalid:
            raise _no_such_invitation() from None
        except ValidationError as exc:
            error = validation_message(exc)
    response = render(
        request,
        "orgs/invitation_accept.html",
        {
            "invitation": invitation,
            "organization": invitation.organization,
            "projects": [p.name for p in invitation.projects.order_by("name")],
            "matches": matches,
            "account_form": account_form,
            "error": error,
            "login_url": f"{reverse('login')}?{urlencode({'next': request.path})}",
        },
        status=400 if (error or account_form.errors) else 200,
    )
    response["Referrer-Policy"] = "no-referrer"  # the token is in this page's URL
    return response
