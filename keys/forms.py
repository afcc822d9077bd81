"""Forms of the key pages. Secret inputs are password inputs that never render a value
back, so a form redisplayed after an error does not carry the key in its HTML."""

from __future__ import annotations

from django import forms
from django.contrib.auth import authenticate
from django.core.exceptions import ValidationError
from django.views.decorators.debug import sensitive_variables

from orgs.models import Project
from platformadmin.netguard import validate_outbound_url

from .models import APIKey


def _secret_field(label: str, help_text: str) -> forms.CharField:
    return forms.CharField(
        label=label, strip=False, help_text=help_text,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off", "spellcheck": "false"}),
    )


class APIKeyCreateForm(forms.Form):
    name = forms.CharField(label="Name", max_length=200,
                           help_text="What the key is for, e.g. 'checkout service'.")
    kind = forms.ChoiceField(
        label="Kind",
        choices=[(APIKey.Kind.PROJECT, "Project key"), (APIKey.Kind.SERVICE_ACCOUNT, "Service-account key")],
    )
    service_account = forms.ModelChoiceField(
        queryset=None, required=False, label="Service account",
        help_text="Only for service-account keys.",
    )
    provider = forms.ChoiceField(label="Provider", choices=APIKey.Provider.choices)
    base_url = forms.URLField(label="Base URL", required=False, assume_scheme="https",
                              help_text="OpenAI-compatible providers only, e.g. https://llm.example.com/v1")
    azure_endpoint = forms.URLField(label="Azure endpoint", required=False, assume_scheme="https")
    azure_api_version = forms.CharField(label="Azure API version", required=False, max_length=32)
    permissions = forms.ChoiceField(
        label="Permissions", choices=APIKey.Permissions.choices, initial=APIKey.Permissions.RESTRICTED,
        help_text="As set on the key at OpenAI; production keys should not have 'all'.",
    )
    secret = _secret_field("Key", "Paste the key. It is encrypted at once and shown to you one time only.")
    test_connection = forms.BooleanField(
        label="Test connection (lists the models with this key)", required=False,
    )

    def __init__(self, *args, project: Project, **kwargs):
        super().__init__(*args, **kwargs)
        self.project = project
        # Scoped: only this project's service accounts can be chosen.
        self.fields["service_account"].queryset = project.service_accounts.all()
        self.fields["service_account"].to_field_name = "public_id"

    def clean_base_url(self) -> str:
        """The server calls this URL with the key: refuse private destinations now, with
        the reason (the same check runs again on every connection)."""
        value = self.cleaned_data.get("base_url") or ""
        validate_outbound_url(value, label="Base URL")
        return value

    def clean_azure_endpoint(self) -> str:
        value = self.cleaned_data.get("azure_endpoint") or ""
        validate_outbound_url(value, label="Azure endpoint")
        return value

    @sensitive_variables("cleaned")
    def clean(self):
        cleaned = super().clean()
        if cleaned.get("kind") == APIKey.Kind.SERVICE_ACCOUNT and not cleaned.get("service_account"):
            self.add_error("service_account", "Choose the service account that owns this key.")
        if cleaned.get("kind") == APIKey.Kind.PROJECT and cleaned.get("service_account"):
            self.add_error("service_account", "Leave the service account empty for a project key.")
        return cleaned


class APIKeyRotateForm(forms.Form):
    secret = _secret_field(
        "New key", "Paste the newly issued value; the old one stops being used by the console at once.")


class PasswordConfirmForm(forms.Form):
    """Re-enter your password (before a reveal)."""

    password = forms.CharField(
        label="Your password", strip=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "current-password"}),
    )

    def __init__(self, *args, request, **kwargs):
        super().__init__(*args, **kwargs)
        self.request = request

    @sensitive_variables("password")
    def clean_password(self) -> str:
        password = self.cleaned_data["password"]
        user = self.request.user
        # authenticate() goes through axes: wrong passwords here count toward the same
        # username + IP lock as the sign-in page.
        ok = authenticate(self.request, username=user.get_username(), password=password)
        if ok is None or ok.pk != user.pk:
            raise ValidationError("Wrong password: type the password you sign in with.")
        return ""


class APIKeyRevokeForm(forms.Form):
    confirm = forms.BooleanField(
        label="I understand that nothing can use this key after it is revoked.", required=True,
        error_messages={"required": "Tick the box to confirm the revocation."},
    )
    reason = forms.CharField(label="Reason (optional)", required=False, max_length=255)
