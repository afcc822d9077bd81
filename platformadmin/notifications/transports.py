"""One transport per channel kind; each raises ``TransportError`` with a message a person
can act on (what happened, whether it is retried, what to fix).

Every outgoing HTTP request goes through ``platformadmin.netguard`` (public addresses only,
checked on the resolved address at connect time, no redirects, no environment proxy,
unless the exact origin is in ``OUTBOUND_ALLOWED_ORIGINS``). Apprise makes its own requests
(with ``requests``), so its URLs are restricted to services with fixed public hosts, and
the URL's host is checked again here at send time (docs/notifications.md, "Residual risk").

Error texts are scrubbed of the channel's URL (whole and by part) and secret before they
leave this module: they are stored on the row, the attempt and the channel, and shown.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import hashlib
import json
import logging
import smtplib
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from email.headerregistry import Address
from http import HTTPStatus
from urllib.parse import urlsplit

import apprise
import httpx2
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.mail import EmailMessage
from django.core.serializers.json import DjangoJSONEncoder
from django.core.validators import validate_email
from django.views.decorators.debug import sensitive_variables

from keys.crypto import DecryptionError, KeyRingError
from keys.fields import unseal
from orgs.selectors import organization_members, project_members
from platformadmin import netguard
from platformadmin.redaction import MIN_SCRUB_LENGTH, scrub

from . import signing
from .models import InAppMessage, Notification, NotificationChannel

log = logging.getLogger(__name__)

SCHEMA = "console.notification/v1"
USER_AGENT = "openai-platform-console-notifications/1"
# Answers that mean "try again later"; any other 4xx means the request is wrong for this
# receiver (auth, gone, not found, refused payload) and is not retried.
RETRYABLE_STATUSES = {408, 425, 429}

# Apprise services whose requests go to the service's own fixed public hosts (the URL
# carries tokens, not a host of the user's choosing). Keyed by apprise's plugin class.
APPRISE_FIXED_HOST_SERVICES = {
    "NotifyDiscord": "Discord",
    "NotifyMSTeams": "Microsoft Teams",
    "NotifyPagerDuty": "PagerDuty",
    "NotifyOpsgenie": "Opsgenie",
    "NotifySlack": "Slack",
    "NotifyTelegram": "Telegram",
    "NotifyPushover": "Pushover",
    "NotifyGoogleChat": "Google Chat",
    "NotifyWebexTeams": "Webex Teams",
}
# Generic apprise transports post to any host the URL names: only to an allow-listed origin.
APPRISE_GENERIC_SERVICES = {"NotifyJSON": "JSON", "NotifyXML": "XML", "NotifyForm": "Form"}


class TransportError(Exception):
    """A delivery that did not happen. ``retryable`` False means retrying cannot help
    (the channel's configuration is wrong): the notification is given up at once."""

    def __init__(
        self,
        message: str,
        *,
        retryable: bool = True,
        status_code: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable
        self.status_code = status_code
        self.retry_after = retry_after

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True)
class Delivered:
    """What a successful transport reports (the HTTP status for webhooks and Slack)."""

    status_code: int | None = None
    detail: str = ""


# --- Helpers ----------------------------------------------------------------------------


def url_secrets(url: str) -> list[str]:
    """The pieces of a channel URL to scrub from any text: the whole URL, its path and
    query, each path segment long enough to be a token (Slack's, Discord's), and the
    user, password and host of a non-HTTP (apprise) URL, where keys sit
    (``pagerduty://integration_key@api_key``, ``tgram://bot_token/chat``)."""
    if not url:
        return []
    parts = urlsplit(url)
    found = [url, parts.path, parts.query, parts.path + ("?" + parts.query if parts.query else "")]
    found += [seg for seg in parts.path.split("/") if len(seg) >= MIN_SCRUB_LENGTH]
    found += [seg for seg in parts.query.split("&") if len(seg) >= MIN_SCRUB_LENGTH]
    if parts.scheme not in ("http", "https"):
        found += [parts.netloc, *parts.netloc.replace("@", ":").split(":")]
    elif "@" in parts.netloc:
        found += parts.netloc.rpartition("@")[0].split(":")
    return [f for f in dict.fromkeys(found) if len(f) >= MIN_SCRUB_LENGTH or f == url]


def url_hint(url: str, *, service: str = "") -> str:
    """What pages show of a channel URL: scheme and host only (the path is the secret).
    An apprise URL's host is often a key (``opsgenie://<api key>``): for those only the
    scheme and the service's name are shown."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        return f"{parts.scheme}://… ({service})"[:200] if service else f"{parts.scheme}://…"
    host = parts.hostname or ""
    try:
        port = parts.port
    except ValueError:
        port = None
    if port:
        host = f"{host}:{port}"
    return f"{parts.scheme}://{host}"[:200]


def _channel_url(channel: NotificationChannel) -> str:
    try:
        return unseal(channel, "url")  # plaintext of the URL from here to the request
    except (DecryptionError, KeyRingError) as exc:
        raise TransportError(
            f"The channel's stored URL cannot be decrypted ({exc}); enter the URL again on "
            "the channel's page.",
            retryable=False,
        ) from exc


def _channel_secret(channel: NotificationChannel) -> str:
    try:
        return unseal(channel, "signing_secret")
    except (DecryptionError, KeyRingError) as exc:
        raise TransportError(
            f"The channel's signing secret cannot be decrypted ({exc}); rotate the secret on "
            "the channel's page.",
            retryable=False,
        ) from exc


def _current_recipient_ids(notification: Notification) -> list[int]:
    """The recipients still in the organization (or the project): someone removed since
    the row was written is not told about it any more."""
    wanted = [r["user_id"] for r in notification.recipients if r.get("user_id")]
    if not wanted:
        return []
    members = set(
        organization_members(organization=notification.organization)
        .filter(user_id__in=wanted, user__is_active=True)
        .values_list("user_id", flat=True)
    )
    if notification.project_id is not None:
        members |= set(
            project_members(project=notification.project)
            .filter(user_id__in=wanted, user__is_active=True)
            .values_list("user_id", flat=True)
        )
    return [uid for uid in wanted if uid in members]


def extra_addresses(text: str) -> list[str]:
    """The channel's extra e-mail addresses: one per line (commas accepted too)."""
    found = []
    for line in (text or "").replace(",", "\n").splitlines():
        line = line.strip()
        if line:
            found.append(line)
    return found


def _email_domain() -> str:
    _, address = email.utils.parseaddr(settings.DEFAULT_FROM_EMAIL)
    return address.rpartition("@")[2] or "console.localhost"


def _status_phrase(code: int) -> str:
    try:
        return HTTPStatus(code).phrase
    except ValueError:
        return "unknown status"


def _retry_after(response: httpx2.Response) -> float | None:
    value = response.headers.get("retry-after", "").strip()
    if value.isdigit():
        return float(value)
    return None


# --- The webhook body (docs/notifications.md, "The JSON body") --------------------------


def webhook_body(notification: Notification, *, attempt: int, timestamp: int) -> bytes:
    """The stable v1 body: every field documented, new fields only added, never renamed."""
    project = notification.project
    organization = notification.organization
    document = {
        "schema": SCHEMA,
        "id": str(notification.public_id),
        "idempotency_key": notification.unique_key,
        "kind": notification.kind,
        "subject": notification.subject,
        "period": notification.period,
        "stage": notification.stage,
        "title": notification.title,
        "body": notification.body,
        "organization": {
            "id": str(organization.public_id),
            "name": organization.name,
            "slug": organization.slug,
        },
        "project": (
            {"id": str(project.public_id), "name": project.name} if project is not None else None
        ),
        "created_at": notification.created_at.astimezone(dt.UTC).isoformat(),
        "timestamp": timestamp,
        "attempt": attempt,
        "data": notification.payload,
    }
    return json.dumps(document, cls=DjangoJSONEncoder, separators=(",", ":")).encode("utf-8")


def slack_body(notification: Notification) -> bytes:
    """Slack's incoming-webhook format: ``text`` (the fallback) and ``blocks``."""

    def esc(text: str) -> str:  # Slack's mrkdwn control characters
        return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")

    context = f"{notification.organization.name}"
    if notification.project is not None:
        context += f" · {notification.project.name}"
    context += f" · {notification.kind} · {notification.period}"
    document = {
        "text": f"{esc(notification.title)}\n{esc(notification.body)}"[:3000],
        "blocks": [
            {
                "type": "header",
                "text": {"type": "plain_text", "text": notification.title[:150]},
            },
            {"type": "section", "text": {"type": "mrkdwn", "text": esc(notification.body)[:3000]}},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": esc(context)[:300]}]},
        ],
    }
    return json.dumps(document, separators=(",", ":")).encode("utf-8")


# --- HTTP (webhook, Slack) --------------------------------------------------------------


@sensitive_variables("url", "secrets", "headers")
def _post(url: str, body: bytes, headers: dict[str, str], *, secrets: list[str]) -> Delivered:
    """POST through the guard, classify the answer. Never follows a redirect."""
    timeout = float(settings.NOTIFICATION_HTTP_TIMEOUT_SECONDS)
    host = urlsplit(url).hostname or "the receiver"
    headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT, **headers}
    try:
        with netguard.guarded_client(timeout=timeout) as client:
            response = client.post(url, content=body, headers=headers)
    except netguard.OutboundRefused as exc:
        raise TransportError(
            f"Refused before sending: {scrub(str(exc), secrets)} Not retried.", retryable=False
        ) from exc
    except httpx2.TimeoutException as exc:
        raise TransportError(
            f"{host} did not answer within {timeout:g} s; retried with backoff.",
        ) from exc
    except httpx2.HTTPError as exc:
        raise TransportError(
            f"Could not reach {host} ({scrub(str(exc) or type(exc).__name__, secrets)}); "
            "retried with backoff.",
        ) from exc
    code = response.status_code
    if 200 <= code < 300:
        return Delivered(status_code=code)
    snippet = scrub(response.text[:300].strip(), secrets)
    said = f"{host} answered HTTP {code} ({_status_phrase(code)})" + (
        f": {snippet}" if snippet else ""
    )
    if 300 <= code < 400:
        raise TransportError(
            f"{said}. Redirects are not followed: set the channel's URL to the final address.",
            retryable=False,
            status_code=code,
        )
    if code >= 500 or code in RETRYABLE_STATUSES:
        raise TransportError(
            f"{said}; retried with backoff.", status_code=code, retry_after=_retry_after(response)
        )
    raise TransportError(
        f"{said}. Not retried (the receiver refused this request): check the channel's URL "
        "and the receiver's configuration, then send a test.",
        retryable=False,
        status_code=code,
    )


@sensitive_variables("url", "secret")
def send_webhook(notification: Notification, *, attempt: int, now: dt.datetime) -> Delivered:
    channel = notification.channel
    url = _channel_url(channel)
    secret = _channel_secret(channel)
    timestamp = int(now.timestamp())
    body = webhook_body(notification, attempt=attempt, timestamp=timestamp)
    headers = {
        signing.SIGNATURE_HEADER: signing.signature(secret, body),
        signing.TIMESTAMP_HEADER: str(timestamp),
        # The same key on every attempt: a receiver drops what it already processed.
        signing.IDEMPOTENCY_HEADER: notification.unique_key,
        signing.NOTIFICATION_ID_HEADER: str(notification.public_id),
    }
    return _post(url, body, headers, secrets=[*url_secrets(url), secret])


@sensitive_variables("url")
def send_slack(notification: Notification, *, attempt: int, now: dt.datetime) -> Delivered:
    url = _channel_url(notification.channel)
    return _post(url, slack_body(notification), {}, secrets=url_secrets(url))


# --- E-mail -------------------------------------------------------------------------------


def send_email(notification: Notification, *, attempt: int, now: dt.datetime) -> Delivered:
    """One message to the recipients (current e-mail addresses of those still members)
    plus the channel's extra addresses. The Message-ID is derived from the unique key, so
    a resend after a crash threads as the same message in mail clients."""
    channel = notification.channel
    ids = _current_recipient_ids(notification)
    users = {
        m.user_id: m.user.email
        for m in organization_members(organization=notification.organization).filter(
            user_id__in=ids
        )
    }
    if notification.project_id is not None:
        for m in project_members(project=notification.project).filter(user_id__in=ids):
            users.setdefault(m.user_id, m.user.email)
    to = list(
        dict.fromkeys(
            [*(users[i] for i in ids if users.get(i)), *extra_addresses(channel.email_recipients)]
        )
    )
    if not to:
        raise TransportError(
            "No recipient has an e-mail address: give the organization's owners an e-mail "
            "address, or add extra recipients to the channel.",
            retryable=False,
        )
    digest = hashlib.sha256(notification.unique_key.encode()).hexdigest()[:40]
    message = EmailMessage(
        subject=notification.title,
        body=f"{notification.body}\n\n-- \n{notification.organization.name} · OpenAI platform console",
        to=to,
        headers={
            "Message-ID": f"<{digest}@{_email_domain()}>",
            signing.NOTIFICATION_ID_HEADER: str(notification.public_id),
        },
    )
    try:
        message.send()
    except smtplib.SMTPRecipientsRefused as exc:
        raise TransportError(
            f"The mail server refused every recipient ({', '.join(sorted(exc.recipients))}); "
            "not retried: correct the addresses.",
            retryable=False,
        ) from exc
    except smtplib.SMTPResponseException as exc:
        text = scrub(f"{exc.smtp_code} {exc.smtp_error!r}")
        if exc.smtp_code >= 500:
            raise TransportError(
                f"The mail server refused the message ({text}); not retried: check the "
                "e-mail settings (EMAIL_URL).",
                retryable=False,
            ) from exc
        raise TransportError(f"The mail server deferred the message ({text}); retried.") from exc
    except (smtplib.SMTPException, OSError) as exc:
        raise TransportError(
            f"Could not hand the message to the mail server ({scrub(str(exc) or type(exc).__name__)}); "
            "retried with backoff. Check EMAIL_URL if this goes on.",
        ) from exc
    return Delivered(detail=f"{len(to)} recipient(s)")


# --- Apprise ------------------------------------------------------------------------------


@sensitive_variables("url")
def apprise_service(url: str) -> tuple[object, str]:
    """The apprise plugin for ``url`` and its service name, or ``ValueError`` saying why it
    is not accepted. Used when the channel is saved and again before each send."""
    plugin = apprise.Apprise.instantiate(url, suppress_exceptions=True)
    if plugin is None:
        raise ValueError(
            "apprise does not recognise this URL; write it as its documentation for the "
            "service says (e.g. discord://webhook_id/webhook_token)."
        )
    name = type(plugin).__name__
    if name in APPRISE_GENERIC_SERVICES:
        origin = _apprise_origin(plugin)
        if origin is None or not netguard.is_allowed(origin):
            raise ValueError(
                f"generic {APPRISE_GENERIC_SERVICES[name]} URLs post to any host, so they are "
                "accepted only for an origin in OUTBOUND_ALLOWED_ORIGINS; use the Webhook "
                "channel kind (signed, guarded) instead."
            )
        return plugin, APPRISE_GENERIC_SERVICES[name]
    if name not in APPRISE_FIXED_HOST_SERVICES:
        services = ", ".join(sorted(APPRISE_FIXED_HOST_SERVICES.values()))
        raise ValueError(
            f"{plugin.service_name} is not one of the services accepted here ({services}): "
            "they post to their own public hosts; for another receiver use the Webhook kind."
        )
    _check_apprise_host(plugin)
    return plugin, APPRISE_FIXED_HOST_SERVICES[name]


def _apprise_origin(plugin) -> netguard.Origin | None:
    host = (getattr(plugin, "host", "") or "").lower()
    if not host:
        return None
    scheme = "https" if getattr(plugin, "secure", False) else "http"
    return netguard.Origin(
        scheme, host, getattr(plugin, "port", None) or netguard.DEFAULT_PORTS[scheme]
    )


def _check_apprise_host(plugin) -> None:
    """Refuse a URL whose host part resolves to a non-public address. For most services
    the host part is a token (it does not resolve, which is fine); for services whose URL
    names a host (a Teams tenant), it must be public."""
    host = (getattr(plugin, "host", "") or "").strip("[]")
    # Only what can name a host: an IP literal, "localhost", a dotted name. A token
    # (Discord's numeric id, an API key) is not looked up: the C resolver reads "12345678"
    # as an IPv4 number, and a bare label may be tried against local search domains.
    if not host or not ("." in host or ":" in host or host.lower() == "localhost"):
        return
    try:
        addresses = [info[4][0] for info in socket.getaddrinfo(host, 443, type=socket.SOCK_STREAM)]
    except (OSError, UnicodeError):
        return  # not a resolvable name: a token in the host position
    for address in addresses:
        problem = netguard.address_problem(address)
        if problem is not None:
            raise ValueError(f"its host resolves to a {problem} address, which is not allowed.")


@sensitive_variables("url")
def send_apprise(notification: Notification, *, attempt: int, now: dt.datetime) -> Delivered:
    url = _channel_url(notification.channel)
    secrets = url_secrets(url)
    try:
        plugin, service = apprise_service(url)  # checked again at send time
    except ValueError as exc:
        raise TransportError(
            f"Refused before sending: {scrub(str(exc), secrets)} Not retried.", retryable=False
        ) from exc
    timeout = float(settings.NOTIFICATION_HTTP_TIMEOUT_SECONDS)
    plugin.socket_connect_timeout = timeout
    plugin.socket_read_timeout = timeout
    with apprise.LogCapture(level=logging.WARNING, fmt="%(message)s") as captured:
        ok = plugin.notify(body=notification.body, title=notification.title)
    if ok:
        return Delivered(detail=service)
    said = scrub(
        captured.getvalue().strip().splitlines()[-1] if captured.getvalue() else "", secrets
    )
    raise TransportError(
        f"{service} did not accept the notification"
        + (f" ({said})" if said else "")
        + "; retried with backoff.",
    )


# --- In-app -------------------------------------------------------------------------------


def send_in_app(notification: Notification, *, attempt: int, now: dt.datetime) -> Delivered:
    """One ``InAppMessage`` per recipient still a member: idempotent on (notification,
    user), and written in the same transaction as the row's "sent" (delivery.py)."""
    ids = _current_recipient_ids(notification)
    InAppMessage.objects.bulk_create(
        [InAppMessage(notification=notification, user_id=uid) for uid in ids],
        ignore_conflicts=True,
    )
    return Delivered(detail=f"{len(ids)} recipient(s)")


TRANSPORTS = {
    NotificationChannel.Kind.EMAIL: send_email,
    NotificationChannel.Kind.WEBHOOK: send_webhook,
    NotificationChannel.Kind.SLACK: send_slack,
    NotificationChannel.Kind.APPRISE: send_apprise,
    NotificationChannel.Kind.IN_APP: send_in_app,
}
# Kinds whose delivery is a database write: done inside the transaction that marks the
# row sent, so it happens exactly once.
TRANSACTIONAL_KINDS = {NotificationChannel.Kind.IN_APP}


def send(notification: Notification, *, attempt: int, now: dt.datetime) -> Delivered:
    transport = TRANSPORTS.get(notification.channel.kind)
    if transport is None:
        raise TransportError(
            f"Unknown channel kind {notification.channel.kind!r}.", retryable=False
        )
    return transport(notification, attempt=attempt, now=now)


# --- Validation at save time (services.py) -----------------------------------------------


def validate_addresses(addresses: Iterable[str]) -> list[str]:
    """The addresses that are not valid e-mail addresses."""
    bad = []
    for address in addresses:
        try:
            validate_email(address)
            Address(addr_spec=address)
        except (ValidationError, ValueError, IndexError):
            bad.append(address)
    return bad
