"""Notification pages: channels per organization, the history, and the bell.

Who sees what (orgs/access.py's rules):
- channels and history cover the whole organization, so they are for its owners and
  readers; outsiders get 404, project-only members 403 (like the audit log: they know the
  organization exists, the page is not theirs); only owners change channels;
- the bell is personal: a user reads and marks only their own in-app messages; a message
  links to its subject (a key, a budget) only when the user may open that page.

Secrets: a channel's URL and signing secret are sealed; pages show ``url_hint`` only. The
signing secret is rendered once, on the page right after creation (no-store).
"""

from __future__ import annotations

import uuid

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import NoReverseMatch, reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_post_parameters, sensitive_variables

from orgs.access import (
    Need,
    OrganizationAccess,
    organization_access_for_user,
    parse_public_id,
    projects_for_user,
)
from orgs.models import OrganizationMembership
from orgs.views.common import post_only, read_only, switcher_context

from . import inbox, selectors, services
from .forms import ChannelForm, HistoryFilterForm
from .models import InAppMessage, Notification, NotificationChannel

HISTORY_PAGE_SIZE = 50
HTMX_STOP_POLLING = 286  # htmx's own status code: the element stops its "every" trigger
# Subjects a message can link to: "<type>:<public id>" -> the page's URL name and argument.
SUBJECT_PAGES = {
    "key": ("keys:key-detail", "key_id"),
    "budget": ("usage:budget-detail", "budget_id"),
}


# --- access -----------------------------------------------------------------------------


def _member_access(request: HttpRequest, org_id, *, manage: bool = False) -> OrganizationAccess:
    """Owners and readers of the organization (404 for outsiders, 403 for project-only
    members; with ``manage``, 403 for readers)."""
    access = organization_access_for_user(request.user, org_id)
    if access.role is None:
        raise PermissionDenied(
            "Only organization owners and readers can see the organization's notifications."
        )
    if manage and not access.is_owner:
        raise PermissionDenied("Only organization owners can change notification channels.")
    return access


def _notification_access(request: HttpRequest, notification_id) -> tuple[Notification, str]:
    notification = selectors.notification_by_public_id(public_id=parse_public_id(notification_id))
    if notification is None:
        raise Http404("Not found")
    access = _member_access(request, notification.organization.public_id)
    return notification, access.role


def _channel_access(
    request: HttpRequest, channel_id, *, manage: bool = False
) -> tuple[NotificationChannel, OrganizationAccess]:
    channel = selectors.notification_channel_by_public_id(public_id=parse_public_id(channel_id))
    if channel is None:
        raise Http404("Not found")
    access = _member_access(request, channel.organization.public_id, manage=manage)
    return channel, access


def _channels_url(organization) -> str:
    return reverse("notifications:channel-list", kwargs={"org_id": organization.public_id})


# --- channels ---------------------------------------------------------------------------


@login_required
def channel_list(request: HttpRequest, org_id) -> HttpResponse:
    access = _member_access(request, org_id)
    if (response := read_only(request)) is not None:
        return response
    organization = access.organization
    return render(
        request,
        "notifications/channel_list.html",
        {
            "organization": organization,
            "channels": selectors.notification_channels_for_organization(organization=organization),
            "is_owner": access.is_owner,
            "kinds": NotificationChannel.Kind.choices,
            "here": "Notification channels",
            **switcher_context(request, organization),
        },
    )


def _service_values(form: ChannelForm) -> dict:
    data = form.cleaned_data
    values = {
        "name": data["name"],
        "event_kinds": data["event_kinds"],
        "is_active": data["is_active"],
    }
    if "url" in form.fields:
        values["url"] = data["url"]  # plaintext URL: sealed by the service
    if "email_recipients" in form.fields:
        values["email_recipients"] = data["email_recipients"]
    return values


@login_required
@never_cache
@sensitive_post_parameters("url")
@sensitive_variables("values", "created")
def channel_create(request: HttpRequest, org_id) -> HttpResponse:
    access = _member_access(request, org_id, manage=True)
    organization = access.organization
    kind = request.POST.get("kind") or request.GET.get("kind") or ""
    context = {
        "organization": organization,
        "kinds": NotificationChannel.Kind.choices,
        "here": "New channel",
        **switcher_context(request, organization),
    }
    if kind not in NotificationChannel.Kind.values:
        # No kind (or an unknown one) yet: the page offers the kinds to choose from.
        status = 400 if kind else 200
        if kind:
            context["kind_error"] = "Unknown kind of channel: choose one from the list."
        return render(request, "notifications/channel_form.html", context, status=status)
    form = ChannelForm(request.POST or None, kind=kind)
    context.update(kind=kind, kind_label=NotificationChannel.Kind(kind).label, form=form)
    if request.method == "POST" and form.is_valid():
        values = _service_values(form)
        try:
            created = services.notification_channel_create(
                organization=organization, actor=request.user, request=request, kind=kind, **values
            )
        except ValidationError as exc:
            form.apply_errors(exc)
        else:
            if created.signing_secret:
                # The one time the signing secret is rendered (no-store page).
                return render(
                    request,
                    "notifications/channel_secret.html",
                    {
                        **context,
                        "channel": created.channel,
                        "secret": created.signing_secret,
                        "here": created.channel.name,
                    },
                )
            messages.success(request, f"Channel {created.channel.name} added.")
            return redirect(_channels_url(organization))
    status = 400 if form.is_bound and form.errors else 200
    return render(request, "notifications/channel_form.html", context, status=status)


@login_required
@never_cache
@sensitive_post_parameters("url")
@sensitive_variables("values")
def channel_edit(request: HttpRequest, channel_id) -> HttpResponse:
    channel, access = _channel_access(request, channel_id, manage=True)
    organization = access.organization
    initial = {
        "name": channel.name,
        "email_recipients": channel.email_recipients,
        "event_kinds": channel.event_kinds,
        "is_active": channel.is_active,
    }
    form = ChannelForm(request.POST or None, kind=channel.kind, editing=True, initial=initial)
    if request.method == "POST" and form.is_valid():
        values = _service_values(form)
        try:
            changes = services.notification_channel_update(
                channel=channel, actor=request.user, request=request, **values
            )
        except ValidationError as exc:
            form.apply_errors(exc)
        else:
            if changes:
                labels = [str(form.fields[f].label) for f in form.fields if f in changes]
                messages.success(request, f"Saved {channel.name}: {', '.join(labels)}.")
            else:
                messages.info(request, "Nothing changed.")
            return redirect(_channels_url(organization))
    return render(
        request,
        "notifications/channel_form.html",
        {
            "organization": organization,
            "channel": channel,
            "kind": channel.kind,
            "kind_label": channel.get_kind_display(),
            "form": form,
            "here": channel.name,
            **switcher_context(request, organization),
        },
        status=400 if form.is_bound and form.errors else 200,
    )


@login_required
@never_cache
@sensitive_variables("secret")
def channel_secret_rotate(request: HttpRequest, channel_id) -> HttpResponse:
    """A new signing secret for a webhook, shown once (the old one stops working)."""
    channel, access = _channel_access(request, channel_id, manage=True)
    if (response := post_only(request)) is not None:
        return response
    if request.POST.get("confirm") != str(channel.public_id):
        messages.error(request, "Confirm: press the button on the channel's page to rotate.")
        return redirect(_channels_url(access.organization))
    try:
        secret = services.notification_channel_secret_rotate(
            channel=channel, actor=request.user, request=request
        )
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
        return redirect(_channels_url(access.organization))
    return render(
        request,
        "notifications/channel_secret.html",
        {
            "organization": access.organization,
            "channel": channel,
            "secret": secret,
            "rotated": True,
            "here": channel.name,
            **switcher_context(request, access.organization),
        },
    )


@login_required
def channel_delete(request: HttpRequest, channel_id) -> HttpResponse:
    """GET: the confirmation page; POST (with the channel's id as ``confirm``): delete."""
    channel, access = _channel_access(request, channel_id, manage=True)
    organization = access.organization
    if request.method == "POST":
        if request.POST.get("confirm") == str(channel.public_id):
            name = channel.name
            services.notification_channel_delete(
                channel=channel, actor=request.user, request=request
            )
            messages.success(request, f"Channel {name} deleted, with its notification history.")
            return redirect(_channels_url(organization))
        error = "Confirm the deletion with the button below: nothing was deleted."
    else:
        error = ""
    return render(
        request,
        "notifications/channel_delete.html",
        {
            "organization": organization,
            "channel": channel,
            "error": error,
            "notification_count": channel.notifications.count(),
            "here": channel.name,
            **switcher_context(request, organization),
        },
        status=400 if error else 200,
    )


@login_required
def channel_test(request: HttpRequest, channel_id) -> HttpResponse:
    channel, access = _channel_access(request, channel_id, manage=True)
    if (response := post_only(request)) is not None:
        return response
    services.notification_send_test(channel=channel, actor=request.user, request=request)
    messages.success(
        request,
        f"Test message queued for {channel.name}"
        f"{'' if channel.is_active else ' (sent although the channel is off)'}: its delivery "
        "shows in the notification history within a minute.",
    )
    return redirect(_channels_url(access.organization))


# --- history ----------------------------------------------------------------------------


@login_required
def notification_history(request: HttpRequest, org_id) -> HttpResponse:
    access = _member_access(request, org_id)
    organization = access.organization
    if (response := read_only(request)) is not None:
        return response
    channels = selectors.notification_channels_for_organization(organization=organization)
    form = HistoryFilterForm(request.GET or None, channels=channels)
    filters: dict = {}
    invalid = form.is_bound and not form.is_valid()
    if form.is_bound and not invalid:
        filters = {k: v for k, v in form.cleaned_data.items() if v}
    rows = selectors.notification_history(organization=organization, **filters)
    page = Paginator(rows, HISTORY_PAGE_SIZE).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    context = {
        "organization": organization,
        "form": form,
        "invalid": invalid,
        "page_obj": None if invalid else page,
        "notifications": [] if invalid else page.object_list,
        "query": query.urlencode(),
        "here": "Notification history",
        **switcher_context(request, organization),
    }
    status = 400 if invalid else 200
    if request.htmx:
        return render(request, "notifications/history.html#rows", context, status=status)
    return render(request, "notifications/history.html", context, status=status)


@login_required
def notification_detail(request: HttpRequest, notification_id) -> HttpResponse:
    notification, _role = _notification_access(request, notification_id)
    if (response := read_only(request)) is not None:
        return response
    organization = notification.organization
    return render(
        request,
        "notifications/notification_detail.html",
        {
            "organization": organization,
            "notification": notification,
            "attempts": selectors.notification_attempts(notification=notification),
            "here": notification.title,
            **switcher_context(request, organization),
        },
    )


# --- the bell ---------------------------------------------------------------------------


def _subject_links(user, rows: list[InAppMessage]) -> dict[int, str]:
    """The page each message links to, only where the user may open it: the project's
    pages for a project event (two queries for the whole page, not one per row), the
    organization's for an organization event (owners and readers)."""
    project_ids = {m.notification.project_id for m in rows if m.notification.project_id}
    org_ids = {m.notification.organization_id for m in rows if not m.notification.project_id}
    readable_projects = (
        set(
            projects_for_user(user, Need.READ)
            .filter(pk__in=project_ids)
            .values_list("pk", flat=True)
        )
        if project_ids
        else set()
    )
    member_orgs = (
        set(
            OrganizationMembership.objects.filter(
                user=user, organization_id__in=org_ids
            ).values_list("organization_id", flat=True)
        )
        if org_ids
        else set()
    )
    links: dict[int, str] = {}
    for message in rows:
        notification = message.notification
        allowed = (
            notification.project_id in readable_projects
            if notification.project_id
            else notification.organization_id in member_orgs
        )
        url = _subject_url(notification.subject) if allowed else None
        if url:
            links[message.pk] = url
    return links


def _subject_url(subject: str) -> str | None:
    kind, _, public_id = subject.partition(":")
    if kind not in SUBJECT_PAGES:
        return None
    name, argument = SUBJECT_PAGES[kind]
    try:
        return reverse(name, kwargs={argument: uuid.UUID(public_id)})
    except (ValueError, NoReverseMatch):
        return None


@login_required
def inbox_list(request: HttpRequest) -> HttpResponse:
    if (response := read_only(request)) is not None:
        return response
    page = Paginator(inbox.inbox_messages_for_user(user=request.user), inbox.INBOX_PAGE_SIZE)
    page_obj = page.get_page(request.GET.get("page"))
    rows = list(page_obj.object_list)
    links = _subject_links(request.user, rows)
    return render(
        request,
        "notifications/inbox.html",
        {
            "page_obj": page_obj,
            "rows": [(message, links.get(message.pk)) for message in rows],
        },
    )


def _back(request: HttpRequest) -> str:
    """Where a mark-as-read form returns: its ``next`` if it is a page of this site."""
    target = request.POST.get("next", "")
    if target and url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return reverse("notifications:inbox")


@login_required
def inbox_read(request: HttpRequest) -> HttpResponse:
    """Mark one of the user's messages read (the ``notification`` field: its public id)."""
    if (response := post_only(request)) is not None:
        return response
    notification_id = request.POST.get("notification", "")
    if not inbox.inbox_message_exists(user=request.user, notification_id=notification_id):
        # Not the user's message (or no such notification): nothing to disclose.
        raise Http404("Not found")
    inbox.inbox_message_mark_read(user=request.user, notification_id=notification_id)
    return redirect(_back(request))


@login_required
def inbox_read_all(request: HttpRequest) -> HttpResponse:
    if (response := post_only(request)) is not None:
        return response
    changed = inbox.inbox_mark_all_read(user=request.user)
    if changed:
        messages.success(
            request, f"Marked {changed} notification{'s' if changed != 1 else ''} as read."
        )
    else:
        messages.info(request, "Nothing to mark: every notification was already read.")
    return redirect(_back(request))


@login_required
def _bell(request: HttpRequest) -> HttpResponse:
    if (response := read_only(request)) is not None:
        return response
    return render(request, "notifications/_bell.html")


def inbox_bell(request: HttpRequest) -> HttpResponse:
    """The bell alone, for htmx to refresh the badge (the header renders it on every page).
    Once the session has ended, htmx's poll gets 286 ("stop polling") rather than the
    sign-in page swapped into the header; any other request is sent to sign in."""
    if request.htmx and not request.user.is_authenticated:
        return HttpResponse(status=HTMX_STOP_POLLING)
    return _bell(request)
