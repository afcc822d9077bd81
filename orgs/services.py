"""Writes on organizations, projects, memberships and service accounts.

One function per action, one transaction each, every change audited. Access checks
happen in the views (through orgs/access.py) before these are called.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
import smtplib
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.utils.text import slugify
from django.views.decorators.debug import sensitive_variables

from .audit import audit_log
from .models import (
    Invitation,
    Organization,
    OrganizationMembership,
    Project,
    ProjectMembership,
    ProjectModelLimit,
    ServiceAccount,
)

ORGANIZATION_FIELDS = ["name", "tier", "openai_org_id", "billing_timezone"]
PROJECT_SETTINGS_FIELDS = [
    "name",
    "environment",
    "status",
    "openai_project_id",
    "allowed_models",
    "max_output_tokens",
    "rotation_period_days",
    "request_timeout_seconds",
    "connect_timeout_seconds",
    "max_retries",
    "circuit_breaker_enabled",
]


def _changes(instance, fields: list[str], values: dict[str, Any]) -> dict[str, list]:
    """Set ``values`` on ``instance``; return {field: [old, new]} for what changed."""
    changed: dict[str, list] = {}
    for field in fields:
        if field not in values:
            continue
        old, new = getattr(instance, field), values[field]
        if old != new:
            changed[field] = [_jsonable(old), _jsonable(new)]
            setattr(instance, field, new)
    return changed


def _save_changes(
    instance: Organization | Project,
    fields: list[str],
    values: dict,
    *,
    action: str,
    actor,
    request,
    organization: Organization | None = None,
    project: Project | None = None,
) -> dict:
    """Apply, validate, save and audit an edit of ``fields``; nothing is written (row or
    audit event) when nothing changed. Returns the changes, ``{field: [old, new]}``."""
    changed = _changes(instance, fields, values)
    if changed:
        instance.full_clean()
        instance.save()
        audit_log(
            action=action,
            actor=actor,
            organization=organization,
            project=project,
            target=instance,
            request=request,
            detail={"changes": changed},
        )
    return changed


def _jsonable(value):
    if value is None or isinstance(value, (bool, int, float, str, list, dict)):
        return value
    return str(value)


@transaction.atomic
def organization_update(*, organization: Organization, actor, request=None, **values) -> dict:
    """Change name, tier, OpenAI org id or billing timezone. Returns what changed."""
    return _save_changes(
        organization,
        ORGANIZATION_FIELDS,
        values,
        action="organization.update",
        actor=actor,
        request=request,
        organization=organization,
    )


def _free_slug(name: str) -> str:
    """A slug from the name, made unique with -2, -3… (the audit CSV and admin use it)."""
    base = slugify(name)[:70].strip("-") or "organization"
    slug, n = base, 1
    while Organization.objects.filter(slug=slug).exists():
        n += 1
        slug = f"{base}-{n}"
    return slug


@transaction.atomic
def organization_create(
    *,
    name: str,
    actor,
    slug: str = "",
    tier: str = Organization.Tier.TIER_1,
    billing_timezone: str = "UTC",
    request=None,
) -> Organization:
    """Create an organization with ``actor`` as its owner (the access check, who may
    create one, is the view's: orgs.access.can_create_organization)."""
    name = name.strip()
    if slug and Organization.objects.filter(slug=slug).exists():
        raise ValidationError(
            {
                "slug": f"The slug '{slug}' is taken: choose another, or leave it empty "
                "to make one from the name."
            }
        )
    organization = Organization(
        name=name, slug=slug or _free_slug(name), tier=tier, billing_timezone=billing_timezone
    )
    organization.full_clean()
    try:
        with transaction.atomic():
            organization.save()
    except IntegrityError as exc:  # the same slug created at the same moment
        raise ValidationError(
            {
                "slug": f"The slug '{organization.slug}' was just taken: save again "
                "or choose another."
            }
        ) from exc
    OrganizationMembership.objects.create(
        user=actor, organization=organization, role=OrganizationMembership.Role.OWNER
    )
    audit_log(
        action="organization.create",
        actor=actor,
        organization=organization,
        target=organization,
        request=request,
        detail={
            "slug": organization.slug,
            "tier": tier,
            "billing_timezone": billing_timezone,
            "owner": _username(actor),
        },
    )
    return organization


@transaction.atomic
def project_create(
    *, organization: Organization, name: str, environment: str, actor, request=None
) -> Project:
    project = Project(organization=organization, name=name.strip(), environment=environment)
    project.full_clean()
    project.save()
    audit_log(
        action="project.create",
        actor=actor,
        project=project,
        target=project,
        request=request,
        detail={"environment": environment},
    )
    return project


@transaction.atomic
def project_update_settings(*, project: Project, actor, request=None, **values) -> dict:
    """Change a project's settings (allowed models, output cap, rotation, client settings)."""
    return _save_changes(
        project,
        PROJECT_SETTINGS_FIELDS,
        values,
        action="project.settings_update",
        actor=actor,
        request=request,
        project=project,
    )


@transaction.atomic
def project_model_limit_set(
    *, project: Project, model_id: str, rpm: int | None, tpm: int | None, actor, request=None
) -> ProjectModelLimit:
    """Create or change the RPM/TPM override of one model in a project."""
    if rpm is None and tpm is None:
        raise ValidationError({"rpm": "Give an RPM or a TPM limit (or remove the override)."})
    limit, created = ProjectModelLimit.objects.get_or_create(
        project=project, model_id=model_id, defaults={"rpm": rpm, "tpm": tpm}
    )
    old = None if created else [limit.rpm, limit.tpm]
    if not created:
        limit.rpm, limit.tpm = rpm, tpm
        limit.full_clean()
        limit.save()
    audit_log(
        action="project.model_limit_set",
        actor=actor,
        project=project,
        target=project,
        request=request,
        detail={"model": model_id, "rpm": rpm, "tpm": tpm, "previous": old},
    )
    return limit


@transaction.atomic
def project_model_limit_remove(*, limit: ProjectModelLimit, actor, request=None) -> None:
    project = limit.project
    detail = {"model": limit.model_id, "rpm": limit.rpm, "tpm": limit.tpm}
    limit.delete()
    audit_log(
        action="project.model_limit_remove",
        actor=actor,
        project=project,
        target=project,
        request=request,
        detail=detail,
    )


def _username(user) -> str:
    return user.get_username()


def _audit_membership(
    action: str,
    user,
    *,
    actor,
    request,
    organization: Organization | None = None,
    project: Project | None = None,
    **detail,
) -> None:
    """The audit row of a membership change, one shape for either scope: the member is the
    target, ``detail`` starts with the scope and the member's name."""
    audit_log(
        action=action,
        actor=actor,
        organization=organization,
        project=project,
        target=user,
        request=request,
        detail={
            "scope": "project" if project is not None else "organization",
            "user": _username(user),
            **detail,
        },
    )


def _would_leave_no_owner(membership: OrganizationMembership) -> bool:
    if membership.role != OrganizationMembership.Role.OWNER:
        return False
    return (
        not OrganizationMembership.objects.filter(
            organization_id=membership.organization_id, role=OrganizationMembership.Role.OWNER
        )
        .exclude(pk=membership.pk)
        .exists()
    )


def _lock_owners(membership: OrganizationMembership) -> None:
    """Lock the organization's owner rows so two demotions or removals cannot both pass
    the last-owner check."""
    list(
        OrganizationMembership.objects.select_for_update().filter(
            organization_id=membership.organization_id, role=OrganizationMembership.Role.OWNER
        )
    )


def _save_role[M: (OrganizationMembership, ProjectMembership)](
    membership: M, old: str, role: str, *, actor, request
) -> M:
    """Save a member's new role (validated) and audit the change in the membership's scope."""
    membership.role = role
    membership.full_clean()
    membership.save()
    scope = (
        {"project": membership.project}
        if isinstance(membership, ProjectMembership)
        else {"organization": membership.organization}
    )
    _audit_membership(
        "membership.role_change",
        membership.user,
        actor=actor,
        request=request,
        **scope,
        **{"from": old, "to": role},
    )
    return membership


@transaction.atomic
def organization_membership_change_role(
    *, membership: OrganizationMembership, role: str, actor, request=None
) -> OrganizationMembership:
    _lock_owners(membership)
    old = membership.role
    if old == role:
        return membership
    if role != OrganizationMembership.Role.OWNER and _would_leave_no_owner(membership):
        raise ValidationError(
            {"role": "An organization needs at least one owner: make someone else owner first."}
        )
    return _save_role(membership, old, role, actor=actor, request=request)


@transaction.atomic
def organization_membership_remove(
    *, membership: OrganizationMembership, actor, request=None
) -> None:
    _lock_owners(membership)
    if _would_leave_no_owner(membership):
        raise ValidationError(
            {
                "membership": "An organization needs at least one owner: make someone else owner first."
            }
        )
    organization, user, role = membership.organization, membership.user, membership.role
    membership.delete()
    _audit_membership(
        "membership.remove",
        user,
        actor=actor,
        request=request,
        organization=organization,
        role=role,
    )


@transaction.atomic
def project_membership_change_role(
    *, membership: ProjectMembership, role: str, actor, request=None
) -> ProjectMembership:
    old = membership.role
    if old == role:
        return membership
    return _save_role(membership, old, role, actor=actor, request=request)


@transaction.atomic
def project_membership_remove(*, membership: ProjectMembership, actor, request=None) -> None:
    project, user, role = membership.project, membership.user, membership.role
    membership.delete()
    _audit_membership(
        "membership.remove", user, actor=actor, request=request, project=project, role=role
    )


@transaction.atomic
def service_account_create(
    *, project: Project, name: str, openai_id: str = "", actor, request=None
) -> ServiceAccount:
    account = ServiceAccount(project=project, name=name.strip(), openai_id=openai_id.strip())
    account.full_clean()
    account.save()
    audit_log(
        action="service_account.create",
        actor=actor,
        project=project,
        target=account,
        request=request,
        detail={"name": account.name},
    )
    return account


# --- Invitations ---------------------------------------------------------------------
# Members join by invitation only (nobody is attached without consent). The link's token
# is a bearer secret: it exists in plaintext only in the e-mail and in the frames below;
# the database keeps its HMAC-SHA256, as for ingestion tokens.


class InvitationInvalid(Exception):
    """The link is unknown, expired, used or revoked: all look the same to the visitor."""


INVITATION_ROLE_TO_ORG = {
    Invitation.Role.ORG_OWNER: OrganizationMembership.Role.OWNER,
    Invitation.Role.ORG_READER: OrganizationMembership.Role.READER,
}
INVITATION_ROLE_TO_PROJECT = {
    Invitation.Role.PROJECT_OWNER: ProjectMembership.Role.OWNER,
    Invitation.Role.PROJECT_MEMBER: ProjectMembership.Role.MEMBER,
}


def _invitation_key() -> bytes:
    return (settings.SECRET_FINGERPRINT_KEY or ("invitation-token:" + settings.SECRET_KEY)).encode()


@sensitive_variables("token")
def invitation_token_digest(token: str) -> str:
    """HMAC-SHA256 of the link's token: the only form in which it is stored."""
    return hmac.new(_invitation_key(), token.encode("utf-8"), hashlib.sha256).hexdigest()


def invitation_expiry_days() -> int:
    return max(1, int(settings.INVITATION_EXPIRY_DAYS))


def _normalise_email(email: str) -> str:
    email = (email or "").strip().lower()
    try:
        validate_email(email)
    except ValidationError as exc:
        raise ValidationError(
            {"email": "Enter a valid e-mail address, e.g. name@example.com."}
        ) from exc
    return email


def _invitation_link(token: str, request) -> str:
    path = reverse("invitation-accept", kwargs={"token": token})
    return request.build_absolute_uri(path) if request is not None else path


@sensitive_variables("token", "link")
def _invitation_send(invitation: Invitation, token: str, request) -> None:
    """Send the link. Called inside the action's transaction: a failed send rolls it back,
    so no invitation exists that nobody received (the owner sees the error and retries)."""
    link = _invitation_link(token, request)
    context = {
        "invitation": invitation,
        "organization": invitation.organization,
        "link": link,
        "projects": [p.name for p in invitation.projects.order_by("name")],
        "invited_by": invitation.invited_by.get_username() if invitation.invited_by else "",
        "expiry_days": invitation_expiry_days(),
    }
    subject = f"You are invited to {invitation.organization.name} on the Platform Console"
    body = render_to_string("orgs/invitation_email.txt", context)
    try:
        send_mail(subject, body, None, [invitation.email])
    except (smtplib.SMTPException, OSError) as exc:
        raise ValidationError(
            {
                "email": (
                    f"The invitation e-mail could not be sent ({type(exc).__name__}): check the mail "
                    "settings (EMAIL_URL) and try again; nothing was saved."
                )
            }
        ) from exc


def _new_token(invitation: Invitation, now) -> str:
    token = secrets.token_urlsafe(32)
    invitation.token_digest = invitation_token_digest(token)
    invitation.expires_at = now + dt.timedelta(days=invitation_expiry_days())
    invitation.last_sent_at = now
    return token


def _project_names(invitation: Invitation) -> list[str]:
    return [p.name for p in invitation.projects.order_by("name")]


@transaction.atomic
@sensitive_variables("token")
def invitation_create(
    *, organization: Organization, email: str, role: str, projects=(), actor, request=None
) -> Invitation:
    """Invite ``email`` with ``role`` (on ``projects`` for a project role) and send the link.

    Whether the address has an account is never looked at, so nothing here tells the
    inviter. An open invitation of the same address and role is renewed (new link,
    new expiry, the projects added), not duplicated.
    """
    email = _normalise_email(email)
    if role not in Invitation.Role.values:
        raise ValidationError({"role": f"Choose one of: {', '.join(Invitation.Role.labels)}."})
    projects = list(projects)
    if role in INVITATION_ROLE_TO_PROJECT:
        if not projects:
            raise ValidationError({"projects": "Choose at least one project for a project role."})
        if any(p.organization_id != organization.pk for p in projects):
            raise ValidationError({"projects": "Choose projects of this organization only."})
    elif projects:
        raise ValidationError(
            {"projects": "An organization role covers every project: leave the projects empty."}
        )
    now = timezone.now()
    invitation = (
        Invitation.objects.select_for_update()
        .filter(
            organization=organization,
            email=email,
            role=role,
            accepted_at__isnull=True,
            revoked_at__isnull=True,
        )
        .first()
    )
    renewed = invitation is not None
    if invitation is None:
        invitation = Invitation(organization=organization, email=email, role=role, invited_by=actor)
    else:
        invitation.sent_count += 1
    token = _new_token(invitation, now)
    invitation.full_clean(exclude=["projects"])
    try:
        with transaction.atomic():
            invitation.save()
    except IntegrityError as exc:  # a concurrent invitation of the same address and role
        raise ValidationError(
            {"email": f"{email} was just invited by someone else: resend that invitation."}
        ) from exc
    if projects:
        invitation.projects.add(*projects)
    audit_log(
        action="invitation.resend" if renewed else "invitation.create",
        actor=actor,
        organization=organization,
        target=invitation,
        request=request,
        detail={
            "email": email,
            "role": role,
            "projects": _project_names(invitation),
            "expires_at": invitation.expires_at.isoformat(),
        },
    )
    _invitation_send(invitation, token, request)
    return invitation


@transaction.atomic
@sensitive_variables("token")
def invitation_resend(*, invitation: Invitation, actor, request=None) -> Invitation:
    """A new link and a new expiry (the old link stops working), sent again."""
    invitation = Invitation.objects.select_for_update().get(pk=invitation.pk)
    if invitation.accepted_at or invitation.revoked_at:
        raise ValidationError(
            {"invitation": f"This invitation was {invitation.status()}: invite the address again."}
        )
    invitation.sent_count += 1
    token = _new_token(invitation, timezone.now())
    invitation.save()
    audit_log(
        action="invitation.resend",
        actor=actor,
        organization=invitation.organization,
        target=invitation,
        request=request,
        detail={
            "email": invitation.email,
            "role": invitation.role,
            "projects": _project_names(invitation),
            "expires_at": invitation.expires_at.isoformat(),
        },
    )
    _invitation_send(invitation, token, request)
    return invitation


@transaction.atomic
def invitation_revoke(*, invitation: Invitation, actor, request=None) -> Invitation:
    """The link stops working at once. Claimed by a conditional update (no double revoke)."""
    changed = Invitation.objects.filter(
        pk=invitation.pk, accepted_at__isnull=True, revoked_at__isnull=True
    ).update(revoked_at=timezone.now(), updated_at=timezone.now())
    invitation.refresh_from_db()
    if not changed:
        raise ValidationError({"invitation": f"This invitation was {invitation.status()} already."})
    audit_log(
        action="invitation.revoke",
        actor=actor,
        organization=invitation.organization,
        target=invitation,
        request=request,
        detail={"email": invitation.email, "role": invitation.role},
    )
    return invitation


@sensitive_variables("token")
def invitation_for_token(token: str) -> Invitation:
    """The pending invitation of a link, or InvitationInvalid (unknown, used, revoked, expired)."""
    if not token or len(token) > 200:
        raise InvitationInvalid
    digest = invitation_token_digest(token)
    invitation = (
        Invitation.objects.pending()
        .select_related("organization", "invited_by")
        .filter(token_digest=digest)
        .first()
    )
    # The digest is the lookup key; compare in constant time all the same.
    if invitation is None or not hmac.compare_digest(invitation.token_digest, digest):
        raise InvitationInvalid
    return invitation


def invitation_email_matches(invitation: Invitation, user) -> bool:
    """Acceptance goes to the signed-in account only if its e-mail is the invited address.

    Account e-mails are set by an administrator or from an invitation link (which proves
    the address), so a match says the invitee is the one accepting; a forwarded link
    cannot attach some other account.
    """
    return bool(user.email) and user.email.strip().lower() == invitation.email


def _join(invitation: Invitation, user, request) -> list[str]:
    """Create the memberships the invitation grants; existing ones keep their role."""
    joined: list[str] = []
    organization = invitation.organization
    if invitation.role in INVITATION_ROLE_TO_ORG:
        role = INVITATION_ROLE_TO_ORG[invitation.role]
        _, created = OrganizationMembership.objects.get_or_create(
            organization=organization, user=user, defaults={"role": role}
        )
        if created:
            joined.append(organization.name)
            _audit_membership(
                "membership.add",
                user,
                actor=user,
                request=request,
                organization=organization,
                role=role,
                via="invitation",
            )
        return joined
    role = INVITATION_ROLE_TO_PROJECT[invitation.role]
    for project in invitation.projects.select_related("organization").order_by("name"):
        _, created = ProjectMembership.objects.get_or_create(
            project=project, user=user, defaults={"role": role}
        )
        if created:
            joined.append(project.name)
            _audit_membership(
                "membership.add",
                user,
                actor=user,
                request=request,
                project=project,
                role=role,
                via="invitation",
            )
    return joined


@transaction.atomic
@sensitive_variables("token")
def invitation_accept(*, token: str, user, request=None) -> tuple[Invitation, list[str]]:
    """The signed-in ``user`` accepts; returns the invitation and what they joined.

    Single use: the row is claimed by a conditional update, so two clicks (or two tabs)
    cannot both accept.
    """
    invitation = invitation_for_token(token)
    if not invitation_email_matches(invitation, user):
        raise ValidationError(
            {
                "email": (
                    "This invitation was sent to another e-mail address than your account's. Sign out, then "
                    "sign in with the account of the invited address, or create an account from this link."
                )
            }
        )
    claimed = (
        Invitation.objects.pending()
        .filter(pk=invitation.pk, token_digest=invitation.token_digest)
        .update(accepted_at=timezone.now(), accepted_by=user, updated_at=timezone.now())
    )
    if claimed != 1:
        raise InvitationInvalid
    joined = _join(invitation, user, request)
    audit_log(
        action="invitation.accept",
        actor=user,
        organization=invitation.organization,
        target=invitation,
        request=request,
        detail={"email": invitation.email, "role": invitation.role, "joined": joined},
    )
    return invitation, joined


@transaction.atomic
@sensitive_variables("token", "password")
def invitation_accept_new_account(*, token: str, username: str, password: str, request=None):
    """Create an account for the invited address and accept, in one transaction.

    ``password`` has passed Django's validators (the form runs them). Returns the user.
    """
    invitation = invitation_for_token(token)
    User = get_user_model()
    if User._default_manager.filter(email__iexact=invitation.email).exists():
        # Only the holder of the link (who controls the address) can see this.
        raise ValidationError(
            {
                "username": (
                    "An account with the invited address exists already: sign in with it to accept."
                )
            }
        )
    user = User(**{User.USERNAME_FIELD: username.strip()}, email=invitation.email)
    user.set_password(password)
    user.full_clean(exclude=["password"])
    try:
        with transaction.atomic():
            user.save()
    except IntegrityError as exc:  # the same username taken a moment ago
        raise ValidationError(
            {"username": "This username was just taken: choose another."}
        ) from exc
    audit_log(
        action="auth.account_create",
        actor=user,
        organization=invitation.organization,
        target=user,
        request=request,
        detail={"via": "invitation", "email": invitation.email},
    )
    invitation_accept(token=token, user=user, request=request)
    return user


# --- The Admin API sync (platformadmin/sync/pull.py): what OpenAI lists ------------------
# Only fields OpenAI owns are written (a project's link and status, an account's link and
# deletion), and only when they differ: a pull with nothing changed upstream writes no row.
# Audit rows carry ``upstream: True``; the actor is who started the pull (None on beat).


@transaction.atomic
def project_import_upstream(
    *, organization: Organization, name: str, openai_project_id: str, status: str, actor=None
) -> Project:
    """A project that exists only at OpenAI, made here under ``name`` (the caller picks a
    free one) and linked by its OpenAI id."""
    project = Project(
        organization=organization,
        name=name[:200],
        openai_project_id=openai_project_id,
        status=status,
        upstream_synced_at=timezone.now(),
    )
    project.full_clean()
    project.save()
    audit_log(
        action="project.import_upstream",
        actor=actor,
        project=project,
        target=project,
        detail={"upstream": True, "openai_project_id": openai_project_id, "status": status},
    )
    return project


@transaction.atomic
def project_update_upstream(*, project: Project, values: dict, actor=None) -> dict:
    """Set the fields OpenAI owns on a project (``openai_project_id`` when linking it,
    ``status``); returns the changes, ``{field: [old, new]}``; nothing written if none."""
    changed = _changes(project, ["openai_project_id", "status"], values)
    if changed:
        project.upstream_synced_at = timezone.now()
        project.full_clean()
        project.save(update_fields=[*changed, "upstream_synced_at", "updated_at"])
        audit_log(
            action="project.update_upstream",
            actor=actor,
            project=project,
            target=project,
            detail={"upstream": True, "changes": changed},
        )
    return changed


@transaction.atomic
def service_account_import_upstream(
    *, project: Project, name: str, openai_id: str, actor=None
) -> ServiceAccount:
    """A service account that exists only at OpenAI, linked by its id (OpenAI allows two
    accounts of one name, and so do linked accounts here)."""
    account = ServiceAccount(project=project, name=(name or openai_id)[:200], openai_id=openai_id)
    account.full_clean()
    account.save()
    audit_log(
        action="service_account.import_upstream",
        actor=actor,
        project=project,
        target=account,
        detail={"upstream": True, "openai_id": openai_id, "name": account.name},
    )
    return account


@transaction.atomic
def service_account_update_upstream(
    *, account: ServiceAccount, openai_id: str | None = None, deleted_upstream_at=..., actor=None
) -> dict:
    """Link an account to its OpenAI id, or mark it deleted (or back) upstream; returns the
    changes; nothing written when none."""
    values = {}
    if openai_id is not None:
        values["openai_id"] = openai_id
    if deleted_upstream_at is not ...:
        values["deleted_upstream_at"] = deleted_upstream_at
    changed = _changes(account, ["openai_id", "deleted_upstream_at"], values)
    if changed:
        account.full_clean()
        account.save(update_fields=[*changed, "updated_at"])
        audit_log(
            action="service_account.update_upstream",
            actor=actor,
            project=account.project,
            target=account,
            detail={"upstream": True, "changes": changed},
        )
    return changed


@transaction.atomic
def project_link_upstream(
    *, project: Project, openai_project_id: str, actor, request=None
) -> Project:
    """Link a console project to the OpenAI project a push just created for it (audited,
    marked upstream). Refuses an id another project of the organization already has."""
    project = Project.objects.select_for_update().get(pk=project.pk)
    if project.openai_project_id and project.openai_project_id != openai_project_id:
        raise ValidationError(
            {"openai_project_id": f"Already linked to {project.openai_project_id}."}
        )
    taken = (
        Project.objects.filter(
            organization_id=project.organization_id, openai_project_id=openai_project_id
        )
        .exclude(pk=project.pk)
        .exists()
    )
    if taken:
        raise ValidationError(
            {"openai_project_id": f"Another project is already linked to {openai_project_id}."}
        )
    project.openai_project_id = openai_project_id
    project.upstream_synced_at = timezone.now()
    project.save(update_fields=["openai_project_id", "upstream_synced_at", "updated_at"])
    audit_log(
        action="project.link_upstream",
        actor=actor,
        project=project,
        target=project,
        request=request,
        detail={"upstream": "push", "openai_project_id": openai_project_id},
    )
    return project
