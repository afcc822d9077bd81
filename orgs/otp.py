"""TOTP two-factor with seeds sealed by the project's key ring.

django-otp's own ``otp_totp.TOTPDevice`` keeps its seed as clear hex in the database,
which this project does not allow for secrets. This module defines a small device
model on django-otp's ``Device`` (so ``request.user.is_verified()``, the OTP
middleware and ``django_otp.login`` all work as usual) whose seed is an
``EncryptedSecretField``; codes are checked with ``django_otp.oath.TOTP``.

The device model is ``orgs.models.TOTPDevice``; here: its services, the QR code, and the
middleware that sends a signed-in user who has a device, but has not
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
from django.core.cache import cache
from django.db import transaction
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver
from django.shortcuts import redirect
from django.urls import reverse
from django.views.decorators.debug import sensitive_variables

from keys.fields import seal, unseal

from .models import OrganizationMembership, TOTPDevice

# The gate remembers "no confirmed device" in the session with the user's device
# generation (a token in the shared cache); any change to the user's devices replaces the
# token, so every session of that user asks the database again on its next request.
NO_DEVICE_SESSION_KEY = "otp_no_device"


def _generation_key(user_id: int) -> str:
    return f"otp-devices:{user_id}"


def device_generation(user_id: int) -> str:
    """The user's current device generation (a new one if the cache lost it: then the
    sessions re-check, which is safe)."""
    return cache.get_or_set(_generation_key(user_id), lambda: uuid.uuid4().hex, timeout=None)


@receiver(post_save, sender=TOTPDevice, dispatch_uid="orgs.otp.devices_changed.save")
@receiver(post_delete, sender=TOTPDevice, dispatch_uid="orgs.otp.devices_changed.delete")
def devices_changed(sender, instance: TOTPDevice, **kwargs) -> None:
    """A device was created, confirmed or deleted, through a service, the admin or a
    cascade: a signal, because the admin and cascades bypass the services."""
    cache.set(_generation_key(instance.user_id), uuid.uuid4().hex, timeout=None)


def user_has_confirmed_device(user) -> bool:
    return user.is_authenticated and TOTPDevice.objects.filter(user=user, confirmed=True).exists()


def session_user_has_confirmed_device(request) -> bool:
    """user_has_confirmed_device, remembered in the session while it is False (the common
    case of a user without two-factor), instead of a query on every request."""
    generation = device_generation(request.user.pk)
    if request.session.get(NO_DEVICE_SESSION_KEY) == generation:
        return False
    if user_has_confirmed_device(request.user):
        request.session.pop(NO_DEVICE_SESSION_KEY, None)
        return True
    request.session[NO_DEVICE_SESSION_KEY] = generation
    return False


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
                if session_user_has_confirmed_device(request):
                    return redirect(
                        f"{reverse('otp-verify')}?next={quote(request.get_full_path())}"
                    )
                if getattr(settings, "OTP_REQUIRED_FOR_ORG_OWNERS", False) and is_org_owner(user):
                    return redirect(reverse("otp-setup"))
        return self.get_response(request)

    def _exempt(self, path: str) -> bool:
        return path.startswith(self.EXEMPT_PREFIXES)
