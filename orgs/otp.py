"""TOTP two-factor with seeds sealed by the project's key ring.

django-otp's own ``otp_totp.TOTPDevice`` keeps its seed as clear hex in the database,
which this project does not allow for secrets. This module defines a small device
model on django-otp's ``Device`` (so ``request.user.is_verified()``, the OTP
middleware and ``django_otp.login`` all work as usual) whose seed is an
``EncryptedSecretField``; codes are checked with ``django_otp.oath.TOTP``.

The model lives here rather than in ``orgs/models.py`` and is imported by
``OrgsConfig.ready()``; its app label is still ``orgs``.

Also here: the middleware that sends a signed-in user who has a device, but has not
entered a code in this session, to the verification page, and (when
``OTP_REQUIRED_FOR_ORG_OWNERS`` is on) sends organization owners without a device to
the set-up page.
"""

from __future__ import annotations

import base64
import secrets
import uuid
from urllib.parse import quote

import segno
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import models, transaction
from django.shortcuts import redirect
from django.urls import reverse
from django.views.decorators.debug import sensitive_variables
from django_otp.models import Device, ThrottlingMixin
from django_otp.oath import TOTP

from keys.fields import EncryptedSecretField, seal, unseal

from .models import OrganizationMembership

STEP_SECONDS = 30
DIGITS = 6
TOLERANCE_STEPS = 1  # accept the previous and the next code too (clock drift)
ISSUER = "Platform Console"


class TOTPDevice(ThrottlingMixin, Device):
    """An authenticator app of a user; the seed is stored sealed (AES-256-GCM)."""

    public_id = models.UUIDField("public id", default=uuid.uuid4, unique=True, editable=False)
    # Ciphertext only (bound to this row by public_id); see keys/fields.py.
    seed = EncryptedSecretField("seed (encrypted)")
    last_t = models.BigIntegerField(
        "last accepted time step", default=-1,
        help_text="A code is accepted once: later codes must be from a later time step.",
    )
    created_at = models.DateTimeField("created at", auto_now_add=True)

    class Meta:
        app_label = "orgs"
        verbose_name = "TOTP device"

    def __str__(self) -> str:
        return f"{self.name} ({'confirmed' if self.confirmed else 'unconfirmed'})"

    def get_throttle_factor(self) -> int:
        return getattr(settings, "OTP_TOTP_THROTTLE_FACTOR", 1)

    def _totp(self) -> TOTP:
        # The seed is unsealed only for the duration of this check.
        return TOTP(base64.b32decode(unseal(self, "seed")), step=STEP_SECONDS, digits=DIGITS)

    @sensitive_variables("token")
    def verify_token(self, token) -> bool:
        """True if ``token`` is the current code (±1 step) and was not used before."""
        allowed, _ = self.verify_is_allowed()
        if not allowed:
            return False
        try:
            value = int(str(token).strip())
        except (TypeError, ValueError):
            return False
        totp = self._totp()
        ok = totp.verify(value, tolerance=TOLERANCE_STEPS, min_t=self.last_t + 1)
        if ok:
            self.last_t = totp.t()
            self.throttle_reset(commit=False)
            self.save(update_fields=["last_t", "throttling_failure_timestamp",
                                     "throttling_failure_count"])
        else:
            self.throttle_increment(commit=True)
        return ok

    def config_url(self, seed_b32: str, username: str) -> str:
        """The otpauth:// URL an authenticator app reads from the QR code."""
        label = quote(f"{ISSUER}:{username}")
        return (
            f"otpauth://totp/{label}?secret={seed_b32}&issuer={quote(ISSUER)}"
            f"&digits={DIGITS}&period={STEP_SECONDS}"
        )


def user_has_confirmed_device(user) -> bool:
    return user.is_authenticated and TOTPDevice.objects.filter(user=user, confirmed=True).exists()


@sensitive_variables("seed_b32")
@transaction.atomic
def totp_device_start(*, user) -> tuple[TOTPDevice, str]:
    """Create (or restart) the user's unconfirmed device. Returns it and the seed once,
    for the QR code on the set-up page; the database keeps only ciphertext."""
    TOTPDevice.objects.filter(user=user, confirmed=False).delete()
    seed_b32 = base64.b32encode(secrets.token_bytes(20)).decode("ascii")
    device = TOTPDevice(user=user, name="Authenticator app", confirmed=False)
    seal(device, "seed", seed_b32)
    device.save()
    return device, seed_b32


@sensitive_variables("seed")
@transaction.atomic
def totp_device_for_setup(*, user) -> tuple[TOTPDevice, str]:
    """The user's unconfirmed device and its seed, created only if there is none.

    What a visit to the set-up page uses: reloading it (or two tabs opening it at once)
    shows the same QR code instead of writing a new device each time. The user's row is
    locked so two first visits cannot both create one.
    """
    get_user_model().objects.select_for_update().filter(pk=user.pk).first()
    device = TOTPDevice.objects.filter(user=user, confirmed=False).order_by("pk").first()
    if device is None:
        return totp_device_start(user=user)
    return device, totp_seed_for_setup(device)


def totp_seed_for_setup(device: TOTPDevice) -> str:
    """The seed of an unconfirmed device, to show its QR code again while setting up."""
    if device.confirmed:
        raise PermissionError("The seed of a confirmed device is never shown again.")
    return unseal(device, "seed")


@transaction.atomic
def totp_device_confirm(*, device: TOTPDevice, token: str) -> bool:
    """Confirm a new device with its first code; other devices of the user are removed."""
    if not device.verify_token(token):
        return False
    TOTPDevice.objects.filter(user=device.user).exclude(pk=device.pk).delete()
    device.confirmed = True
    device.save(update_fields=["confirmed"])
    return True


def qr_svg(data: str) -> str:
    """An inline SVG QR code (segno; no external service sees the seed)."""
    return segno.make(data, error="m").svg_inline(scale=5, dark="#111827")


def is_org_owner(user) -> bool:
    return OrganizationMembership.objects.filter(
        user=user, role=OrganizationMembership.Role.OWNER
    ).exists()


class OTPRequiredMiddleware:
    """After the password, the code: gate every page until the session is verified.

    Must come after django_otp's OTPMiddleware. Exempt: the two-factor pages, sign-out,
    password reset, static files and the health check.
    """

    EXEMPT_PREFIXES = ("/static/", "/healthz", "/accounts/")

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated and not self._exempt(request.path):
            verified = getattr(user, "is_verified", lambda: False)()
            if not verified:
                if user_has_confirmed_device(user):
                    return redirect(f"{reverse('otp-verify')}?next={quote(request.get_full_path())}")
                if getattr(settings, "OTP_REQUIRED_FOR_ORG_OWNERS", False) and is_org_owner(user):
                    return redirect(reverse("otp-setup"))
        return self.get_response(request)

    def _exempt(self, path: str) -> bool:
        return path.startswith(self.EXEMPT_PREFIXES)
