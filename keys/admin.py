"""Django admin for API keys: the secret is write-only, the lifecycle goes through services.

The form takes a new value in a password input that is never rendered back; the page
shows only the hint. Lifecycle fields (status, dates, hint, fingerprint) are read-only:
a revoked key set back to Active here would skip the audit log and the key's history,
and the playground would use it again. A key added here goes through
``services.api_key_add`` and a secret replaced here through ``services.api_key_rotate``,
with the admin user as the actor, so both are audited like the console's own pages.
Format errors, duplicates and refused rotations are form errors on the field, never a 500.
"""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ObjectDoesNotExist, ValidationError
from django.http import HttpResponseRedirect
from django.utils.decorators import method_decorator
from django.views.decorators.debug import sensitive_post_parameters, sensitive_variables

from orgs.admin import AppendOnlyAdmin

from . import services
from .crypto import fingerprint
from .models import APIKey, APIKeyEvent, RotationReminder

# Set once, when the key is added (through the service); never edited here afterwards.
_FIXED_AFTER_ADD = ["organization", "expires_at"]
_LIFECYCLE = [
    "public_id",
    "status",
    "hint",
    "fingerprint",
    "created_by",
    "created_at",
    "updated_at",
    "last_used_at",
    "last_rotated_at",
    "revoked_at",
]


class APIKeyAdminForm(forms.ModelForm):
    new_secret = forms.CharField(
        label="Secret",
        required=False,
        strip=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
        help_text="Write-only. Paste a value to set the key, or a newly issued value to rotate "
        "it (audited); leave empty to keep it.",
    )

    class Meta:
        model = APIKey
        fields = [
            "organization",
            "project",
            "service_account",
            "name",
            "kind",
            "provider",
            "base_url",
            "azure_endpoint",
            "azure_api_version",
            "permissions",
            "openai_key_id",
            "expires_at",
        ]

    @sensitive_variables("secret")
    def clean(self):
        cleaned = super().clean()
        secret = cleaned.get("new_secret") or ""
        cleaned["new_secret"] = ""
        # Plaintext is held on the form for this request only, until save_model hands it
        # to the service; it is never rendered back (render_value=False).
        self.secret_to_store = ""
        creating = self.instance._state.adding
        if not secret:
            if creating:
                self.add_error("new_secret", "Paste the key's value: a new key needs its secret.")
            return cleaned
        if not creating and not self.instance.is_active:
            self.add_error(
                "new_secret",
                f"This key is {self.instance.get_status_display().lower()}; "
                "add a new key instead of rotating it.",
            )
            return cleaned
        organization = cleaned.get("organization") or getattr(self.instance, "organization", None)
        try:
            services.validate_key_format(
                secret=secret,
                kind=cleaned.get("kind") or self.instance.kind,
                provider=cleaned.get("provider") or self.instance.provider,
            )
            if not creating:
                services._refuse_current_value(self.instance, secret)
            if organization is not None:
                probe = APIKey(
                    pk=self.instance.pk, organization=organization, fingerprint=fingerprint(secret)
                )
                services._check_duplicate(probe)
        except ValidationError as exc:
            for message in exc.message_dict.get("secret", exc.messages):
                self.add_error("new_secret", message)
        else:
            self.secret_to_store = secret
        return cleaned

    def _post_clean(self):
        super()._post_clean()
        try:
            services._validate_relations(self.instance)
        except ValidationError as exc:
            self._update_errors(exc)
        except ObjectDoesNotExist:  # a relation not chosen yet: the required-field error says so
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
        "name",
        "hint",
        "kind",
        "provider",
        "permissions",
        "status",
        "organization",
        "project",
        "last_used_at",
        "last_rotated_at",
        "created_at",
    ]
    list_filter = ["status", "kind", "provider", "permissions", "organization"]
    search_fields = ["name", "hint", "openai_key_id", "project__name", "organization__name"]
    list_select_related = ["organization", "project"]
    readonly_fields = _LIFECYCLE
    fieldsets = [
        (
            None,
            {"fields": ["organization", "project", "service_account", "name", "kind", "status"]},
        ),
        ("Secret", {"fields": ["new_secret", "hint", "fingerprint"]}),
        (
            "Provider",
            {
                "fields": [
                    "provider",
                    "base_url",
                    "azure_endpoint",
                    "azure_api_version",
                    "permissions",
                    "openai_key_id",
                ]
            },
        ),
        (
            "Dates",
            {
                "fields": [
                    "created_at",
                    "updated_at",
                    "last_used_at",
                    "last_rotated_at",
                    "expires_at",
                    "revoked_at",
                    "created_by",
                    "public_id",
                ]
            },
        ),
    ]

    def get_readonly_fields(self, request, obj=None):
        return _LIFECYCLE + (_FIXED_AFTER_ADD if obj is not None else [])

    @method_decorator(sensitive_post_parameters("new_secret"))
    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except ValidationError as exc:
            # A concurrent write got in between the form's checks and the service (the
            # admin's transaction was rolled back): say so instead of a 500.
            messages.error(request, "Nothing was saved: " + " ".join(exc.messages))
            return HttpResponseRedirect(request.get_full_path())

    @sensitive_variables("secret")
    def save_model(self, request, obj, form, change):
        secret = form.secret_to_store
        if not change:
            created = services.api_key_add(
                actor=request.user,
                request=request,
                secret=secret,
                **{
                    name: form.cleaned_data.get(name)
                    for name in APIKeyAdminForm.Meta.fields
                    if name in form.cleaned_data and form.cleaned_data.get(name) is not None
                },
            )
            obj.pk = created.pk
            obj.refresh_from_db()
            obj._state.adding = False
            return
        super().save_model(request, obj, form, change)
        edited = sorted(set(form.changed_data) - {"new_secret"})
        if edited:
            services.audit_key(
                "key.admin_change",
                obj,
                actor=request.user,
                request=request,
                detail={"fields": edited},
            )
        if secret:
            services.api_key_rotate(api_key=obj, secret=secret, actor=request.user, request=request)
            obj.refresh_from_db()


@admin.register(APIKeyEvent)
class APIKeyEventAdmin(AppendOnlyAdmin):
    """Read-only: key history is append-only, even for superusers."""

    list_display = ["occurred_at", "api_key", "action", "actor_label", "old_hint", "new_hint"]
    list_filter = ["action"]
    search_fields = ["api_key__name", "actor_label", "old_hint", "new_hint", "note"]
    list_select_related = ["api_key"]


@admin.register(RotationReminder)
class RotationReminderAdmin(AppendOnlyAdmin):
    """Read-only: which rotation reminders went out. Deleting one would send it again on the
    next scan (keys/reminders.py), so nobody can, superusers included."""

    list_display = ["created_at", "api_key", "stage", "due_at", "cycle"]
    list_filter = ["stage"]
    search_fields = ["api_key__name", "api_key__hint"]
    list_select_related = ["api_key"]
