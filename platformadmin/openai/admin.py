"""Admin API calls (``client.admin.organization…``) with an organization's admin key.

Every call goes through the one process-wide client (platformadmin/openai/client.py: the
outgoing-request guard, the shared pool) with explicit timeouts. Reads may be retried by
the SDK; **calls that create something are sent with ``max_retries=0``**: the SDK sends no
idempotency key, so a retried POST could create a second key or service account. Such a
call is followed, on any error, by a listing that finds out what was created
(``created_after_error``).

Errors become ``AdminAPIError`` with a message a person can act on, scrubbed of the admin
key by value and by shape; nothing here logs or stores the plaintext.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx2
import openai
from django.conf import settings
from django.views.decorators.debug import sensitive_variables

from keys.services import SecretUnavailable, api_key_secret_for_call
from platformadmin.openai.client import OPENAI_BASE_URL, base_client, refusal_of
from platformadmin.openai.errors import retry_after_of
from platformadmin.redaction import exception_secrets, scrub

# Upstream's hint: a spend limit's 429 is not a rate limit.
SPEND_LIMIT_CODES = {"project_spend_limit_exceeded", "organization_spend_limit_exceeded"}


class AdminAPIError(Exception):
    """An Admin API call failed; ``str()`` says why and what to do (no secret in it)."""

    def __init__(
        self, message: str, *, status: int | None = None, retry_after: float | None = None
    ):
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


@dataclass(frozen=True)
class AdminCall:
    """How one admin call is sent: timeouts, and whether the SDK may retry it."""

    timeout: float
    connect_timeout: float
    max_retries: int

    @classmethod
    def read(cls) -> AdminCall:
        return cls(
            settings.OPENAI_ADMIN_TIMEOUT_SECONDS,
            settings.OPENAI_ADMIN_CONNECT_TIMEOUT_SECONDS,
            settings.OPENAI_ADMIN_READ_RETRIES,
        )

    @classmethod
    def create(cls) -> AdminCall:
        # Never retried by the SDK: a retried create can make a second object upstream.
        return cls(
            settings.OPENAI_ADMIN_TIMEOUT_SECONDS, settings.OPENAI_ADMIN_CONNECT_TIMEOUT_SECONDS, 0
        )


def admin_base_url(admin_key) -> str:
    return (admin_key.base_url or OPENAI_BASE_URL).rstrip("/")


@sensitive_variables("secret")
def _organization_api(admin_key, call: AdminCall):
    """``client.admin.organization`` for this admin key (decrypted just before the call)."""
    try:
        secret = api_key_secret_for_call(admin_key)
    except SecretUnavailable as exc:
        raise AdminAPIError(str(exc)) from exc
    client = base_client().with_options(
        admin_api_key=secret,
        base_url=admin_base_url(admin_key),
        organization=admin_key.organization.openai_org_id or None,
        timeout=httpx2.Timeout(call.timeout, connect=min(call.connect_timeout, call.timeout)),
        max_retries=call.max_retries,
    )
    return client.admin.organization


def explain_admin_error(exc: Exception, *, admin_key, action: str) -> AdminAPIError:
    """An SDK exception from an admin call as an ``AdminAPIError`` naming the fix."""
    secrets = exception_secrets(exc)
    body = getattr(exc, "body", None)
    server = scrub(
        str(
            (body.get("message") if isinstance(body, dict) else None)
            or getattr(exc, "message", exc)
        ),
        secrets,
    )
    where = admin_base_url(admin_key)
    status = getattr(exc, "status_code", None)
    rid = getattr(exc, "request_id", None)
    ids = f" (request id {rid})" if rid else ""
    refusal = refusal_of(exc)
    if refusal is not None:
        message = f"Could not {action}: {refusal}"
    elif isinstance(exc, openai.AuthenticationError):
        message = (
            f"OpenAI rejected the admin key {admin_key.hint} (401) while trying to {action}: "
            f"{server}{ids} Store a current admin key (sk-admin-…) on the organization page."
        )
    elif isinstance(exc, openai.PermissionDeniedError):
        message = (
            f"The admin key {admin_key.hint} may not {action} (403): {server}{ids} Give the key "
            "the Admin API scopes it needs."
        )
    elif isinstance(exc, openai.RateLimitError):
        after = retry_after_of(exc)
        wait = f" Retry after {math.ceil(after)} s." if after is not None else " Retry later."
        message = f"OpenAI rate-limited the Admin API while trying to {action} (429).{wait}{ids}"
    elif isinstance(exc, openai.NotFoundError):
        message = f"OpenAI found nothing to {action} (404): {server}{ids}"
    elif isinstance(exc, openai.BadRequestError):
        message = f"OpenAI refused to {action} as invalid (400): {server}{ids}"
    elif isinstance(exc, openai.APITimeoutError):
        message = (
            f"No reply from {where} within {settings.OPENAI_ADMIN_TIMEOUT_SECONDS:g} s while trying "
            f"to {action}."
        )
    elif isinstance(exc, openai.APIConnectionError):
        message = f"Could not reach {where} to {action}: {server or 'connection error'}."
    elif isinstance(exc, openai.APIStatusError):
        message = (
            f"OpenAI answered {status} while trying to {action}: {server}{ids} Try again later."
        )
    else:
        message = f"Could not {action} ({type(exc).__name__}): {scrub(str(exc), secrets)}"
    return AdminAPIError(
        scrub(message, secrets),
        status=status,
        retry_after=retry_after_of(exc) if isinstance(exc, openai.APIStatusError) else None,
    )


def admin_call(admin_key, action: str, func: Callable[[Any], Any], *, create: bool = False):
    """Run ``func(client.admin.organization)``; SDK errors become ``AdminAPIError``."""
    api = _organization_api(admin_key, AdminCall.create() if create else AdminCall.read())
    try:
        return func(api)
    except (openai.OpenAIError, httpx2.HTTPError) as exc:
        raise explain_admin_error(exc, admin_key=admin_key, action=action) from exc


def admin_list(admin_key, action: str, func: Callable[[Any], Any]) -> list:
    """Every item of an auto-paginating listing, every page followed. A page that fails
    fails the whole listing (a half listing must not read as "deleted upstream")."""
    api = _organization_api(admin_key, AdminCall.read())
    try:
        return list(_iterate(func(api)))
    except (openai.OpenAIError, httpx2.HTTPError) as exc:
        raise explain_admin_error(exc, admin_key=admin_key, action=action) from exc


def _iterate(page) -> Iterator:
    yield from page  # the SDK's pages fetch the next page as iteration reaches it


def admin_buckets(admin_key, action: str, func: Callable[[Any, str | None], Any]) -> list:
    """Every bucket of a usage or costs pull: these are not auto-paginated, so
    ``func(api, page)`` is called with ``next_page`` while ``has_more``."""
    api = _organization_api(admin_key, AdminCall.read())
    buckets, page = [], None
    try:
        for _ in range(10_000):  # a hostile upstream cannot keep this loop going forever
            reply = func(api, page)
            buckets.extend(reply.data)
            if not reply.has_more or not reply.next_page:
                return buckets
            page = reply.next_page
    except (openai.OpenAIError, httpx2.HTTPError) as exc:
        raise explain_admin_error(exc, admin_key=admin_key, action=action) from exc
    raise AdminAPIError(f"OpenAI kept sending pages while trying to {action}; stopped.")


def is_spend_limit_error(exc: BaseException) -> bool:
    """OpenAI's 429 for a project or organization spend limit (not a rate limit)."""
    return (
        isinstance(exc, openai.RateLimitError) and getattr(exc, "code", None) in SPEND_LIMIT_CODES
    )
