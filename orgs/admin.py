"""Django admin for raw edits of organizations, projects and memberships."""

from __future__ import annotations

from django.contrib import admin

from keys.models import APIKey

from .models import (
    AuditEvent,
    Invitation,
    Organization,
    OrganizationMembership,
    Project,
    ProjectMembership,
    ProjectModelLimit,
    ServiceAccount,
)
from .otp import TOTPDevice
from .services import invitation_revoke


class OrganizationMembershipInline(admin.TabularInline):
    model = OrganizationMembership
    extra = 0
    autocomplete_fields = ["user"]


class ProjectInline(admin.TabularInline):
    model = Project
    extra = 0
    fields = ["name", "environment", "status", "openai_project_id", "rotation_period_days"]
    show_change_link = True


@admin.register(Organization)
class OrganizationAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "tier", "openai_org_id", "billing_timezone", "created_at"]
    list_filter = ["tier"]
    search_fields = ["name", "slug", "openai_org_id"]
    readonly_fields = ["public_id", "created_at", "updated_at"]
    prepopulated_fields = {"slug": ["name"]}
    inlines = [OrganizationMembershipInline, ProjectInline]


class ProjectMembershipInline(admin.TabularInline):
    model = ProjectMembership
    extra = 0
    autocomplete_fields = ["user"]


class ServiceAccountInline(admin.TabularInline):
    model = ServiceAccount
    extra = 0
    fields = ["name", "openai_id"]


class ProjectModelLimitInline(admin.TabularInline):
    model = ProjectModelLimit
    extra = 0


class AppendOnlyAdmin(admin.ModelAdmin):
    """The admin of a history table (the audit log, key history): it can be read, never
    added to, changed or deleted from, even by a superuser."""

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class APIKeyInline(admin.TabularInline):
    """Keys in a project: read-only summary (secrets are never shown; edit on the key page)."""

    model = APIKey
    extra = 0
    fields = ["name", "kind", "provider", "permissions", "hint", "status", "last_rotated_at"]
    readonly_fields = fields
    show_change_link = True
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Project)
class ProjectAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "organization",
        "environment",
        "status",
        "max_output_tokens",
        "rotation_period_days",
        "created_at",
    ]
    list_filter = ["environment", "status", "organization"]
    search_fields = ["name", "openai_project_id", "organization__name"]
    readonly_fields = ["public_id", "created_at", "updated_at"]
    list_select_related = ["organization"]
    inlines = [ProjectMembershipInline, ServiceAccountInline, ProjectModelLimitInline, APIKeyInline]


@admin.register(OrganizationMembership)
class OrganizationMembershipAdmin(admin.ModelAdmin):
    list_display = ["user", "organization", "role", "created_at"]
    list_filter = ["role", "organization"]
    search_fields = ["user__username", "user__email", "organization__name"]
    autocomplete_fields = ["user"]


@admin.register(ProjectMembership)
class ProjectMembershipAdmin(admin.ModelAdmin):
    list_display = ["user", "project", "role", "created_at"]
    list_filter = ["role", "project__organization"]
    search_fields = ["user__username", "user__email", "project__name"]
    autocomplete_fields = ["user"]


@admin.register(ServiceAccount)
class ServiceAccountAdmin(admin.ModelAdmin):
    list_display = ["name", "project", "openai_id", "created_at"]
    list_filter = ["project__organization"]
    search_fields = ["name", "openai_id", "project__name"]
    readonly_fields = ["public_id", "created_at", "updated_at"]


@admin.register(ProjectModelLimit)
class ProjectModelLimitAdmin(admin.ModelAdmin):
    list_display = ["project", "model_id", "rpm", "tpm"]
    search_fields = ["project__name", "model_id"]


@admin.register(AuditEvent)
class AuditEventAdmin(AppendOnlyAdmin):
    """Read-only: the audit log is append-only, even for superusers."""

    list_display = [
        "occurred_at",
        "actor_label",
        "action",
        "target_label",
        "organization",
        "ip_address",
    ]
    list_filter = ["action", "organization"]
    search_fields = ["actor_label", "action", "target_label", "target_id"]
    date_hierarchy = "occurred_at"


@admin.register(Invitation)
class InvitationAdmin(admin.ModelAdmin):
    """Read-only, with an audited Revoke action: invitations are made and resent from the
    console (the link must be e-mailed, and every change audited). The token's HMAC is
    never shown."""

    list_display = [
        "email",
        "organization",
        "role",
        "invited_by",
        "expires_at",
        "accepted_at",
        "revoked_at",
    ]
    list_filter = ["role", "organization"]
    search_fields = ["email", "organization__name"]
    list_select_related = ["organization", "invited_by"]
    fields = [
        "organization",
        "email",
        "role",
        "projects",
        "invited_by",
        "created_at",
        "expires_at",
        "sent_count",
        "last_sent_at",
        "accepted_at",
        "accepted_by",
        "revoked_at",
    ]
    readonly_fields = fields
    actions = ["revoke_selected"]

    def has_add_permission(self, request) -> bool:
        return False  # the link must be e-mailed: invite from the organization page

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # revoke instead: a deletion would leave no trace

    @admin.action(description="Revoke the selected invitations (their links stop working)")
    def revoke_selected(self, request, queryset) -> None:
        revoked = 0
        for invitation in queryset.filter(accepted_at__isnull=True, revoked_at__isnull=True):
            invitation_revoke(invitation=invitation, actor=request.user, request=request)
            revoked += 1
        self.message_user(request, f"{revoked} invitation(s) revoked.")


@admin.register(TOTPDevice)
class TOTPDeviceAdmin(admin.ModelAdmin):
    """Two-factor devices: the seed is never shown; deleting a device resets a user's 2FA."""

    list_display = ["user", "name", "confirmed", "created_at", "throttling_failure_count"]
    list_filter = ["confirmed"]
    search_fields = ["user__username", "user__email", "name"]
    fields = [
        "user",
        "name",
        "confirmed",
        "created_at",
        "throttling_failure_count",
        "throttling_failure_timestamp",
    ]
    readonly_fields = [
        "user",
        "created_at",
        "throttling_failure_count",
        "throttling_failure_timestamp",
    ]

    def has_add_permission(self, request) -> bool:
        return False  # devices are enrolled by their user, who scans the seed once
