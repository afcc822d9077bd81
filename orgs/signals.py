"""Sign-in events into the audit log (success, failure, lock-out, sign-out).

Sign-in events belong to no organization (a user may be in several); the per-
organization audit page shows those of its own members (orgs/selectors.py).
A failed attempt records the username typed, never the password.
"""

from __future__ import annotations

from axes.signals import user_locked_out
from django.contrib.auth import get_user_model
from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.dispatch import receiver

from .audit import audit_log


def _user_named(username: str):
    if not username:
        return None
    User = get_user_model()
    return User._default_manager.filter(**{User.USERNAME_FIELD: username}).first()


@receiver(user_logged_in, dispatch_uid="orgs.audit.login")
def audit_login(sender, request, user, **kwargs) -> None:
    audit_log(action="auth.login", actor=user, target=user, request=request)


@receiver(user_logged_out, dispatch_uid="orgs.audit.logout")
def audit_logout(sender, request, user, **kwargs) -> None:
    if user is not None:
        audit_log(action="auth.logout", actor=user, target=user, request=request)


@receiver(user_login_failed, dispatch_uid="orgs.audit.login_failed")
def audit_login_failed(sender, credentials, request=None, **kwargs) -> None:
    # ``credentials`` is already cleansed by Django (password replaced by stars);
    # keep the username only.
    username = str(credentials.get("username", ""))[:150]
    audit_log(
        action="auth.login_failed",
        target=_user_named(username),
        request=request,
        detail={"username": username},
    )


@receiver(user_locked_out, dispatch_uid="orgs.audit.locked_out")
def audit_locked_out(sender, request, username, ip_address, **kwargs) -> None:
    username = str(username or "")[:150]
    audit_log(
        action="auth.locked_out",
        target=_user_named(username),
        request=request,
        detail={"username": username},
    )
