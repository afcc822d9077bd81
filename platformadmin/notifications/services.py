"""Writes of the notification outbox: enqueue, channels, test messages.

``notifications_enqueue`` is called inside the caller's transaction (the budget alert or
the rotation reminder and its notification rows commit together, or neither does);
delivery is queued only after that commit (``transaction.on_commit``), and a task lost on
the way (broker down at that moment) is picked up by the sweep: the row is the truth.
"""

from __future__ import annotations

import json
import re
import secrets
from functools import partial
from typing import Any, NamedTuple

import httpx2
from django.core.exceptions import ValidationError
from django.core.serializers.json import DjangoJSONEncoder
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables

from keys.fields import seal
from orgs.audit import audit_log
from orgs.models import Organization, OrganizationMembership, Project, ProjectMembership
from orgs.selectors import organization_members, project_members
from platformadmin import netguard

from . import kinds, signing, transports
from .models import Notification, NotificationChannel
from .tasks import notification_deliver

# A part of the unique key travels in the Idempotency-Key header: printable ASCII, no
# spaces, and not the "|" that joins the parts.
_KEY_PART = re.compile(r"[!-{}~]+")
_PART_LIMITS = {"subject": 200, "kind": 64, "period": 64, "stage": 64}
MAX_EXTRA_RECIPIENTS = 20
MAX_URL_LENGTH = 2000


class ChannelCreated(NamedTuple):
    """A new channel and, for a webhook, its signing secret: shown once, then sealed."""

    channel: NotificationChannel
    signing_secret: str | None


# --- The outbox -----------------------------------------------------------------------


def notification_unique_key(
    *, channel: NotificationChannel, subject: str, kind: str, period: str, stage: str
) -> str:
    """The five parts of the unique constraint as one string (the idempotency header)."""
    parts = {"subject": subject, "kind": kind, "period": period, "stage": stage}
    for name, value in parts.items():
        if not isinstance(value, str) or not _KEY_PART.fullmatch(value):
            raise ValueError(
                f"notification {name} {value!r} must be printable ASCII without spaces or '|'."
            )
        if len(value) > _PART_LIMITS[name]:
            raise ValueError(f"notification {name} is longer than {_PART_LIMITS[name]} characters.")
    key = "|".join([str(channel.public_id), subject, kind, period, stage])
    if len(key) > 255:
        raise ValueError("the notification's unique key is longer than 255 characters.")
    return key


def _recipients(
    organization: Organization, project: Project | None, *, also=None
) -> list[dict[str, Any]]:
    """The organization's owners, plus the project's owners for a project event, each
    once, as ``{"user_id", "email", "name"}`` (resolved when the row is written; the
    transports re-check membership when they send)."""
    people: dict[int, dict[str, Any]] = {}
    memberships = list(
        organization_members(organization=organization).filter(
            role=OrganizationMembership.Role.OWNER, user__is_active=True
        )
    )
    if project is not None:
        memberships += list(
            project_members(project=project).filter(
                role=ProjectMembership.Role.OWNER, user__is_active=True
            )
        )
    users = [m.user for m in memberships]
    if also is not None:
        users.append(also)
    for user in users:
        people.setdefault(
            user.pk, {"user_id": user.pk, "email": user.email or "", "name": user.get_username()}
        )
    return list(people.values())


def _ensure_default_channels(organization: Organization) -> None:
    """An organization with no channel at all gets the console bell and owners-by-e-mail.
    RACE: two first notifications at once: get_or_create on the unique (organization,
    name) gives the second caller the first one's row."""
    if NotificationChannel.objects.filter(organization=organization).exists():
        return
    for kind, name in kinds.DEFAULT_CHANNELS:
        NotificationChannel.objects.get_or_create(
            organization=organization, name=name, defaults={"kind": kind}
        )


def _takes(channel: NotificationChannel, kind: str) -> bool:
    return channel.is_active and (not channel.event_kinds or kind in channel.event_kinds)


def _jsonable(payload: dict) -> dict:
    """The payload as stored and sent: Decimals (money) become exact strings."""
    return json.loads(json.dumps(payload or {}, cls=DjangoJSONEncoder))


def _queue_delivery(notification: Notification) -> None:
    # After the commit only (the worker must see the row); robust: a broker outage at that
    # moment is logged, not raised into a request whose state change has committed; the
    # sweep queues the row later.
    transaction.on_commit(partial(notification_deliver.delay, notification.pk), robust=True)


def notifications_enqueue(
    *,
    organization: Organization,
    kind: str,
    subject: str,
    period: str,
    stage: str,
    title: str,
    body: str,
    payload: dict,
    project: Project | None = None,
) -> list[Notification]:
    """Write one row per active channel of the organization that takes ``kind``, and
    queue each for delivery after the commit. Idempotent: the rows already written for
    these (channel, subject, kind, period, stage) are left alone; returns the new rows
    only (a second call returns ``[]``)."""
    if kind not in kinds.SUBSCRIBABLE:
        raise ValueError(
            f"unknown notification kind {kind!r}; one of {', '.join(kinds.SUBSCRIBABLE)} "
            "(a channel test goes through notification_send_test)."
        )
    payload = _jsonable(payload)
    written: list[Notification] = []
    with transaction.atomic():
        _ensure_default_channels(organization)
        channels = [
            c
            for c in NotificationChannel.objects.filter(organization=organization).order_by("pk")
            if _takes(c, kind)
        ]
        if not channels:
            return written
        recipients = _recipients(organization, project)
        for channel in channels:
            key = notification_unique_key(
                channel=channel, subject=subject, kind=kind, period=period, stage=stage
            )
            # RACE: get_or_create inserts in a savepoint; a concurrent writer of the same
            # key makes this insert fail on the unique index and the row is read instead.
            notification, created = Notification.objects.get_or_create(
                unique_key=key,
                defaults={
                    "organization": organization,
                    "project": project,
                    "channel": channel,
                    "subject": subject,
                    "kind": kind,
                    "period": period,
                    "stage": stage,
                    "title": title[:300],
                    "body": body,
                    "payload": payload,
                    "recipients": recipients,
                },
            )
            if created:
                written.append(notification)
                _queue_delivery(notification)
    return written


@transaction.atomic
def notification_send_test(*, channel: NotificationChannel, actor, request=None) -> Notification:
    """A test message to this one channel, now: a fresh stage each time (so each test is
    its own row), delivered by the task after the commit, even if the channel is off."""
    now = timezone.now()
    stage = f"{now:%Y%m%dT%H%M%S}-{secrets.token_hex(4)}"
    organization = channel.organization
    key = notification_unique_key(
        channel=channel,
        subject=f"channel:{channel.public_id}",
        kind=kinds.CHANNEL_TEST,
        period=f"{now:%Y-%m}",
        stage=stage,
    )
    who = actor.get_username() if actor is not None else "the console"
    notification = Notification.objects.create(
        organization=organization,
        channel=channel,
        subject=f"channel:{channel.public_id}",
        kind=kinds.CHANNEL_TEST,
        period=f"{now:%Y-%m}",
        stage=stage,
        unique_key=key,
        title=f"Test message for the channel {channel.name}",
        body=(
            f"{who} sent this test from the console's notification channels page of "
            f"{organization.name}. If you can read it, the channel works."
        ),
        payload={"channel": {"id": str(channel.public_id), "name": channel.name}},
        recipients=_recipients(organization, None, also=actor),
    )
    audit_log(
        action="notification_channel.test",
        actor=actor,
        organization=organization,
        target=channel,
        request=request,
        detail={
            "name": channel.name,
            "kind": channel.kind,
            "notification": str(notification.public_id),
        },
    )
    _queue_delivery(notification)
    return notification


# --- Channels -------------------------------------------------------------------------


@sensitive_variables("url")
def _clean_url(kind: str, url: str) -> tuple[str, str]:
    """The URL, checked for its kind, and its hint; ``ValidationError`` on "url" saying
    what to fix. Never quotes the URL back (its path is the credential)."""
    url = (url or "").strip()
    if not url:
        raise ValidationError({"url": "Enter the URL: this kind of channel needs one."})
    if len(url) > MAX_URL_LENGTH:
        raise ValidationError({"url": f"The URL is longer than {MAX_URL_LENGTH} characters."})
    if kind == NotificationChannel.Kind.APPRISE:
        try:
            _plugin, service = transports.apprise_service(url)
        except ValueError as exc:
            raise ValidationError({"url": f"This apprise URL is not accepted: {exc}"}) from exc
        return url, transports.url_hint(url, service=service)
    try:
        origin = netguard.Origin.from_url(url)
        parsed = httpx2.URL(url)
    except (ValueError, httpx2.InvalidURL) as exc:
        raise ValidationError(
            {"url": "The URL is not usable; write it as https://host/path."}
        ) from exc
    if parsed.userinfo:
        raise ValidationError(
            {"url": "The URL must not contain a user or password before '@'; remove that part."}
        )
    if origin.scheme != "https" and not netguard.is_allowed(origin):
        raise ValidationError(
            {
                "url": "The URL must start with https:// (the message and its signature travel "
                "in the request); http:// is accepted only for an origin in "
                "OUTBOUND_ALLOWED_ORIGINS."
            }
        )
    try:
        netguard.validate_outbound_url(url, label="The URL")
    except ValidationError as exc:
        # The guard's message quotes the URL; ours names only the host.
        cause = exc.__cause__
        reason = str(cause) if isinstance(cause, netguard.OutboundRefused) else "it is refused"
        raise ValidationError({"url": f"The URL is not accepted: {reason}"}) from exc
    return url, transports.url_hint(url)


def _clean_recipients(text: str) -> str:
    addresses = list(dict.fromkeys(transports.extra_addresses(text)))
    if len(addresses) > MAX_EXTRA_RECIPIENTS:
        raise ValidationError(
            {"email_recipients": f"At most {MAX_EXTRA_RECIPIENTS} extra addresses; remove some."}
        )
    bad = transports.validate_addresses(addresses)
    if bad:
        raise ValidationError(
            {
                "email_recipients": f"Not an e-mail address: {', '.join(bad[:5])}. Write one "
                "address per line."
            }
        )
    return "\n".join(addresses)


def _clean_event_kinds(values) -> list[str]:
    if values is None:
        return []
    if isinstance(values, str):
        values = [values]
    chosen = [str(v) for v in values]
    unknown = [v for v in chosen if v not in kinds.SUBSCRIBABLE]
    if unknown:
        raise ValidationError(
            {
                "event_kinds": f"Unknown event(s): {', '.join(unknown)}; choose from "
                f"{', '.join(kinds.SUBSCRIBABLE)} (none = all)."
            }
        )
    return sorted(set(chosen))


def _clean_name(name: str) -> str:
    name = (name or "").strip()
    if not name:
        raise ValidationError({"name": "Enter a name for the channel."})
    if len(name) > 100:
        raise ValidationError({"name": "The name is longer than 100 characters."})
    return name


def _save(channel: NotificationChannel) -> None:
    taken = NotificationChannel.objects.filter(
        organization_id=channel.organization_id, name=channel.name
    ).exclude(pk=channel.pk)
    if taken.exists():
        raise ValidationError(
            {"name": "This organization already has a channel by that name; choose another name."}
        )
    channel.full_clean(validate_constraints=False)  # the name is checked above, on its field
    try:
        with transaction.atomic():
            channel.save()
    except IntegrityError as exc:  # RACE: the same name saved concurrently
        raise ValidationError(
            {"name": "This organization already has a channel by that name."}
        ) from exc


@sensitive_variables("url", "secret")
@transaction.atomic
def notification_channel_create(
    *,
    organization: Organization,
    actor,
    kind: str,
    name: str,
    url: str = "",
    email_recipients: str = "",
    event_kinds=None,
    is_active: bool = True,
    request=None,
) -> ChannelCreated:
    """A channel, validated field by field (``ValidationError`` naming the field). A URL
    is checked by the outgoing-request guard now (and again at every send), sealed, and
    shown afterwards only as scheme + host. A webhook gets a new signing secret, returned
    here once."""
    if kind not in NotificationChannel.Kind.values:
        raise ValidationError(
            {"kind": f"Choose a kind: {', '.join(NotificationChannel.Kind.values)}."}
        )
    channel = NotificationChannel(
        organization=organization,
        kind=kind,
        name=_clean_name(name),
        is_active=bool(is_active),
        event_kinds=_clean_event_kinds(event_kinds),
    )
    if kind == NotificationChannel.Kind.EMAIL:
        channel.email_recipients = _clean_recipients(email_recipients)
    elif (email_recipients or "").strip():
        raise ValidationError(
            {"email_recipients": "Extra e-mail addresses are for e-mail channels only."}
        )
    secret = None
    if kind in kinds.URL_KINDS:
        url, channel.url_hint = _clean_url(kind, url)
        seal(channel, "url", url)  # plaintext URL becomes ciphertext here
    elif (url or "").strip():
        raise ValidationError({"url": "E-mail and in-app channels take no URL; leave it empty."})
    if kind == NotificationChannel.Kind.WEBHOOK:
        secret = signing.signing_secret_new()
        seal(channel, "signing_secret", secret)
    _save(channel)
    audit_log(
        action="notification_channel.create",
        actor=actor,
        organization=organization,
        target=channel,
        request=request,
        detail={
            "name": channel.name,
            "kind": channel.kind,
            "url": channel.url_hint,
            "events": channel.event_kinds,
        },
    )
    return ChannelCreated(channel, secret)


CHANNEL_UPDATE_FIELDS = ("name", "url", "email_recipients", "event_kinds", "is_active")


@sensitive_variables("url", "values")
@transaction.atomic
def notification_channel_update(
    *, channel: NotificationChannel, actor, request=None, **values
) -> dict[str, list]:
    """Change a channel (kind is fixed). An empty or missing ``url`` keeps the stored
    one; a new URL resets the failure counters. Returns the changes (hints, never URLs)."""
    unknown = set(values) - set(CHANNEL_UPDATE_FIELDS)
    if unknown:
        raise TypeError(f"notification_channel_update() got unknown fields {sorted(unknown)}")
    changes: dict[str, list] = {}
    if "name" in values:
        name = _clean_name(values["name"])
        if name != channel.name:
            changes["name"] = [channel.name, name]
            channel.name = name
    if "is_active" in values and bool(values["is_active"]) != channel.is_active:
        changes["is_active"] = [channel.is_active, bool(values["is_active"])]
        channel.is_active = bool(values["is_active"])
    if "event_kinds" in values:
        event_kinds = _clean_event_kinds(values["event_kinds"])
        if event_kinds != sorted(channel.event_kinds or []):
            changes["event_kinds"] = [channel.event_kinds, event_kinds]
            channel.event_kinds = event_kinds
    if "email_recipients" in values:
        if channel.kind == NotificationChannel.Kind.EMAIL:
            recipients = _clean_recipients(values["email_recipients"])
            if recipients != channel.email_recipients:
                changes["email_recipients"] = [
                    len(transports.extra_addresses(channel.email_recipients)),
                    len(transports.extra_addresses(recipients)),
                ]
                channel.email_recipients = recipients
        elif (values["email_recipients"] or "").strip():
            raise ValidationError(
                {"email_recipients": "Extra e-mail addresses are for e-mail channels only."}
            )
    url = (values.get("url") or "").strip()
    if url:
        if channel.kind not in kinds.URL_KINDS:
            raise ValidationError(
                {"url": "E-mail and in-app channels take no URL; leave it empty."}
            )
        url, hint = _clean_url(channel.kind, url)
        seal(channel, "url", url)
        changes["url"] = [channel.url_hint, hint]
        channel.url_hint = hint
        channel.consecutive_failures = 0
        channel.last_error = ""
    if not changes:
        return changes
    _save(channel)
    audit_log(
        action="notification_channel.update",
        actor=actor,
        organization=channel.organization,
        target=channel,
        request=request,
        detail={"name": channel.name, "kind": channel.kind, "changes": changes},
    )
    return changes


@sensitive_variables("secret")
@transaction.atomic
def notification_channel_secret_rotate(*, channel: NotificationChannel, actor, request=None) -> str:
    """A new signing secret for a webhook channel, returned once (the old one stops
    working at once: the receiver must be updated)."""
    if channel.kind != NotificationChannel.Kind.WEBHOOK:
        raise ValidationError({"kind": "Only webhook channels have a signing secret."})
    secret = signing.signing_secret_new()
    seal(channel, "signing_secret", secret)
    channel.save(update_fields=["signing_secret", "updated_at"])
    audit_log(
        action="notification_channel.secret_rotate",
        actor=actor,
        organization=channel.organization,
        target=channel,
        request=request,
        detail={"name": channel.name, "kind": channel.kind},
    )
    return secret


@transaction.atomic
def notification_channel_delete(*, channel: NotificationChannel, actor, request=None) -> None:
    """Delete a channel and its notification history. If it was the organization's last
    channel, the defaults come back with the next notification (to silence a channel,
    switch it off instead)."""
    audit_log(
        action="notification_channel.delete",
        actor=actor,
        organization=channel.organization,
        target=channel,
        request=request,
        detail={"name": channel.name, "kind": channel.kind, "url": channel.url_hint},
    )
    channel.delete()
