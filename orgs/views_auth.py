"""Sign-in pages beyond Django's own: the two-factor code and set-up, and password reset
(throttled, and lifting the sign-in lock when completed).

Password reset requests are counted per client address and per target e-mail address in
the shared cache (Django's cache API, fixed windows). Over either limit the request
gets exactly the response it would have got otherwise ("check your email") but no
e-mail is sent: the page must not tell anyone whether an address exists or is being
throttled, and a mailbox must not be flooded.
"""

from __future__ import annotations

import hashlib
import logging
from urllib.parse import urlparse

import django_otp
from axes.utils import reset as axes_reset
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.db import transaction
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.utils.decorators import method_decorator
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_post_parameters

from platformadmin import cachecounter

from .audit import audit_log, client_ip
from .otp import (
    TOTPDevice,
    qr_svg,
    totp_device_confirm,
    totp_device_for_setup,
    totp_device_start,
)

log = logging.getLogger(__name__)


def _safe_next(request: HttpRequest, default: str = "/") -> str:
    target = request.POST.get("next") or request.GET.get("next") or default
    if url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return urlparse(target).path + (
            f"?{urlparse(target).query}" if urlparse(target).query else ""
        )
    return default


@login_required
@never_cache
@sensitive_post_parameters("token")
def otp_verify(request: HttpRequest) -> HttpResponse:
    """The code after the password, for users with a confirmed authenticator."""
    device = TOTPDevice.objects.filter(user=request.user, confirmed=True).first()
    if device is None:
        return redirect("otp-setup")
    error = ""
    if request.method == "POST":
        # Whether the throttle held *before* this try: a wrong code starts it, and that
        # first wrong code is a wrong code, not "too many".
        allowed, _ = device.verify_is_allowed()
        if allowed and device.verify_token(request.POST.get("token", "")):
            django_otp.login(request, device)
            audit_log(
                action="auth.otp_verified", actor=request.user, target=request.user, request=request
            )
            return redirect(_safe_next(request))
        audit_log(
            action="auth.otp_failed", actor=request.user, target=request.user, request=request
        )
        error = (
            "Wrong or expired code: type the 6-digit code your authenticator app shows now."
            if allowed
            else "Too many wrong codes: wait a little and try again."
        )
    return render(
        request,
        "registration/otp_verify.html",
        {"error": error, "next": _safe_next(request)},
        status=400 if error else 200,
    )


@login_required
@never_cache
@sensitive_post_parameters("token")
def otp_setup(request: HttpRequest) -> HttpResponse:
    """Set up an authenticator: a QR code (inline SVG) and a first code to confirm.

    A visit shows the user's one unconfirmed device (created on the first visit only);
    a new seed only on the explicit "New QR code" POST. The seed is shown only here,
    only while the device is unconfirmed; the database keeps it sealed.
    """
    has_confirmed = TOTPDevice.objects.filter(user=request.user, confirmed=True).exists()
    if has_confirmed and not request.user.is_verified():
        return redirect("otp-verify")
    if request.method == "POST" and "restart" in request.POST:
        totp_device_start(user=request.user)
        messages.info(
            request, "New QR code: scan it and type the code it shows; the old one no longer works."
        )
        return redirect("otp-setup")  # a reload of the result page must not restart again
    error = ""
    if request.method == "POST":
        device = (
            TOTPDevice.objects.filter(user=request.user, confirmed=False).order_by("pk").first()
        )
        if device is None:
            error = (
                "This set-up was replaced (another tab?): scan the QR code below and type its code."
            )
        elif totp_device_confirm(device=device, token=request.POST.get("token", "")):
            django_otp.login(request, device)
            audit_log(
                action="auth.otp_enabled", actor=request.user, target=request.user, request=request
            )
            messages.success(
                request, "Two-factor sign-in is on: you will be asked for a code at each sign-in."
            )
            return redirect("home")
        else:
            error = (
                "That code does not match: check the time on your phone and type the current code."
            )
    device, seed = totp_device_for_setup(user=request.user)
    return render(
        request,
        "registration/otp_setup.html",
        {
            "qr": qr_svg(device.config_url(seed, request.user.get_username())),
            "seed": seed,
            "error": error,
            "has_confirmed": has_confirmed,
            "required": getattr(settings, "OTP_REQUIRED_FOR_ORG_OWNERS", False),
        },
        status=400 if error else 200,
    )


# --- Password reset ------------------------------------------------------------------


def _count(kind: str, value: str, *, window: int) -> int:
    """Add one to this window's counter for (kind, value) and return the new count.

    The shared-cache window counter (platformadmin/cachecounter.py): atomic on Redis and
    the local-memory cache, so concurrent requests cannot both see the last free slot.
    The value is hashed: no e-mail address ends up in a cache key.
    """
    digest = hashlib.sha256(value.encode()).hexdigest()[:32]
    return cachecounter.incr(
        cachecounter.window(f"pwreset:{kind}:{digest}", seconds=window).key, timeout=window * 2
    )


def password_reset_allowed(*, ip: str | None, email: str) -> bool:
    """Count one reset request; False when its address or its target is over the limit."""
    window = settings.PASSWORD_RESET_THROTTLE_WINDOW_MINUTES * 60
    by_target = _count("email", email.strip().lower(), window=window)
    by_address = _count("ip", ip or "unknown", window=window)
    return (
        by_target <= settings.PASSWORD_RESET_LIMIT_PER_EMAIL
        and by_address <= settings.PASSWORD_RESET_LIMIT_PER_ADDRESS
    )


class PasswordResetView(auth_views.PasswordResetView):
    """Django's view with a throttle: over a limit, the same redirect and no e-mail."""

    def form_valid(self, form):
        if password_reset_allowed(ip=client_ip(self.request), email=form.cleaned_data["email"]):
            return super().form_valid(form)
        log.warning(
            "Password reset throttled for a request from %s (no e-mail sent).",
            client_ip(self.request),
        )
        return HttpResponseRedirect(self.get_success_url())


@method_decorator(sensitive_post_parameters("new_password1", "new_password2"), name="dispatch")
class PasswordResetConfirmView(auth_views.PasswordResetConfirmView):
    """Django's view, plus: every sign-in lock of that account lifts, and it is audited."""

    @transaction.atomic
    def form_valid(self, form):
        response = super().form_valid(form)
        # All of the account's failures, from every address: the per-account lock an
        # attacker may have caused lifts for the person who proved they own the mailbox.
        axes_reset(username=form.user.get_username())
        audit_log(
            action="auth.password_reset", actor=form.user, target=form.user, request=self.request
        )
        return response
