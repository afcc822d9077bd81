"""The webhook signature: HMAC-SHA256 of the raw body with the channel's secret.

A receiver recomputes it over the bytes it received (before parsing) and compares in
constant time (docs/notifications.md has the receiver's side in Python). The body carries
the same ``timestamp`` as the ``X-Console-Timestamp`` header, so the timestamp is signed
too and a receiver can refuse old replays.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from django.views.decorators.debug import sensitive_variables

SIGNATURE_HEADER = "X-Console-Signature"
TIMESTAMP_HEADER = "X-Console-Timestamp"
IDEMPOTENCY_HEADER = "Idempotency-Key"
NOTIFICATION_ID_HEADER = "X-Console-Notification-Id"
SECRET_PREFIX = "whsec_"


def signing_secret_new() -> str:
    """A fresh per-channel secret (256 bits), shown once, then only sealed."""
    return SECRET_PREFIX + secrets.token_urlsafe(32)


@sensitive_variables("secret")
def signature(secret: str, body: bytes) -> str:
    """The header value: ``sha256=<hex>``."""
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


@sensitive_variables("secret")
def signature_matches(secret: str, body: bytes, header: str) -> bool:
    """What a receiver does: recompute and compare in constant time."""
    return hmac.compare_digest(signature(secret, body), header or "")
