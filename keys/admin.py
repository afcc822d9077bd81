"""Django admin for API keys: the secret is write-only.

The form takes a new value in a password input that is never rendered back; the
page shows only the hint. Format errors and duplicates are form errors on the
field, never a 500.
"""

from __future__ import annotations

from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError
from django.utils import timezone
from django.utils.decorators import method_decorator
from django.views.decorators.debug import sensitive_post_parameters, sensitive_variables

from . import services
from .models import APIKey, APIKeyEvent


class APIKeyAdminForm(forms.ModelForm):
    new_secret = forms.CharField(
        label="Secret",
        required=False,
        strip=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
        help_text="Write-only. Paste a value to set (or replace) the key; leave empty to keep it.",
    )

    class Meta:
        model = APIKey
        fields = [
            "organization", "project", "service_account", "name", "kind", "provider",
            "base_url", "azure_endpoint", "azure_api_version", "permissions", "status",
            "openai_key_id", "expires_at",
        ]

    @sensitive_variables("secret")
    def clean(self):
        cleaned = super().clean()
        secret = cleaned.get("new_secret") or ""
        creating = self.instance._state.adding
        if not secret:
            if creating:
                self.add_error("new_secret", "Paste the key's value: a new key needs its secret.")
            return cleaned
        try:
            services.validate_key_format(
                secret=secret,
                kind=cleaned.get("kind") or self.instance.kind,
                provider=cleaned.get("provider") or self.instance.provider,
            )
            # Plaintext is sealed onto the unsaved instance here; the form keeps no copy.
            services._store_secret(self.instance, secret)
            services._check_duplicate(self.instance)
        except ValidationError as exc:
            for message in exc.message_dict.get("secret", exc.messages):
                self.add_error("new_secret", message)
        else:
            if not creating:
                self.instance.last_rotated_at = timezone.now()
        cleaned["new_secret"] = ""
        return cleaned

    def _post_clean(self):
        super()._post_clean()
        try:
            services._validate_relations(self.instance)
        except ValidationError as exc:
            self._update_errors(exc)
        except Exception:  # a relation not chosen yet: the required-field error says so
            pass


class APIKeyEventInline(admin.TabularInline):
    """The key's history: read-only (append-only, hints only)."""

    model = APIKeyEvent
    extra = 0
    fields = ["occurred_at", "action", "actor_label", "old_hint", "new_hint", "note"]
    readonly_fields = fields
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(APIKey)
class APIKeyAdmin(admin.ModelAdmin):
    form = APIKeyAdminForm
    inlines = [APIKeyEventInline]
    list_display = [
        "name", "hint", "kind", "provider", "permissions", "status", "organization", "project",
        "last_used_at", "last_rotated_at", "created_at",
    ]
    list_filter = ["status", "kind", "provider", "permissions", "organization"]
    search_fields = ["name", "hint", "openai_key_id", "project__name", "organization__name"]
    list_select_related = ["organization", "project"]
    readonly_fields = [
        "public_id", "hint", "fingerprint", "created_by", "created_at", "updated_at",
        "last_used_at", "last_rotated_at", "revoked_at",
    ]
    fieldsets = [
        (None, {"fields": ["organization", "project", "service_account", "name", "kind", "status"]}),
        ("Secret", {"fields": ["new_secret", "hint", "fingerprint"]}),
        ("Provider", {"fields": ["provider", "base_url", "azure_endpoint", "azure_api_version", "permissions", "openai_key_id"]}),
        ("Dates", {"fields": ["created_at", "updated_at", "last_used_at", "last_rotated_at", "expires_at", "revoked_at", "created_by", "public_id"]}),
    ]

    @method_decorator(sensitive_post_parameters("new_secret"))
    def changeform_view(self, request, *args, **kwargs):
        return super().changeform_view(request, *args, **kwargs)

    def save_model(self, request, obj, form, change):
        if not change:
            obj.created_by = request.user
        super().save_model(request, obj, form, change)


@admin.register(APIKeyEvent)
class APIKeyEventAdmin(admin.ModelAdmin):
    """Read-only: key history is append-only, even for superusers."""

    list_display = ["occurred_at", "api_key", "action", "actor_label", "old_hint", "new_hint"]
    list_filter = ["action"]
    search_fields = ["api_key__name", "actor_label", "old_hint", "new_hint", "note"]
    list_select_related = ["api_key"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
