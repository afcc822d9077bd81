"""Django admin for notifications: read-only views of channels and the outbox.

Channels are created and changed through the console's pages (services.py: validated,
the URL checked by the outgoing-request guard, sealed, audited); here a superuser sees
them with the URL's hint only, never the sealed URL or signing secret, and may switch a
channel off or delete it (through the same services, so both are audited). Notifications, attempts and in-app messages are history: read only.
"""

from __future__ import annotations

from django.contrib import admin

from orgs.admin import AppendOnlyAdmin

from . import services
from .models import InAppMessage, Notification, NotificationAttempt, NotificationChannel


@admin.register(NotificationChannel)
class NotificationChannelAdmin(admin.ModelAdmin):
    list_display = ["name", "organization", "kind", "url_hint", "is_active", "consecutive_failures"]
    list_filter = ["kind", "is_active"]
    search_fields = ["name", "organization__name", "url_hint"]
    # The sealed fields (url, signing_secret) are not editable and not listed: the page
    # never holds their ciphertext, let alone their plaintext.
    fields = [
        "public_id",
        "organization",
        "name",
        "kind",
        "is_active",
        "url_hint",
        "email_recipients",
        "event_kinds",
        "consecutive_failures",
        "last_error",
        "last_failure_at",
        "last_success_at",
        "created_at",
        "updated_at",
    ]
    readonly_fields = [f for f in fields if f != "is_active"]

    def has_add_permission(self, request) -> bool:
        return False  # through the console's channel page (validation, sealing, audit)

    def save_model(self, request, obj, form, change) -> None:
        """The on/off switch, audited like the console's page (the only editable field)."""
        stored = NotificationChannel.objects.get(pk=obj.pk)  # obj already has the form's value
        services.notification_channel_update(
            channel=stored, actor=request.user, request=request, is_active=obj.is_active
        )

    def delete_model(self, request, obj) -> None:
        services.notification_channel_delete(channel=obj, actor=request.user, request=request)

    def delete_queryset(self, request, queryset) -> None:
        for channel in queryset:
            self.delete_model(request, channel)


class NotificationAttemptInline(admin.TabularInline):
    model = NotificationAttempt
    extra = 0
    can_delete = False
    fields = ["number", "started_at", "finished_at", "succeeded", "status_code", "error"]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Notification)
class NotificationAdmin(AppendOnlyAdmin):
    list_display = ["title", "organization", "channel", "kind", "state", "attempts", "created_at"]
    list_filter = ["state", "kind"]
    search_fields = ["title", "unique_key", "subject"]
    list_select_related = ["organization", "channel"]
    inlines = [NotificationAttemptInline]


@admin.register(InAppMessage)
class InAppMessageAdmin(AppendOnlyAdmin):
    list_display = ["notification", "user", "created_at", "read_at"]
    list_select_related = ["notification", "user"]
