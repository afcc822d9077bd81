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
        label=label,
        strip=False,
        help_text=help_text,
        widget=forms.PasswordInput(
            render_value=False, attrs={"autocomplete": "off", "spellcheck": "false"}
        ),
    )


# Fields that apply only to one kind or provider: (the select that decides, its value).
APPLIES_WHEN: dict[str, tuple[str, str]] = {
    "service_account": ("kind", APIKey.Kind.SERVICE_ACCOUNT),
    "base_url": ("provider", APIKey.Provider.COMPATIBLE),
    "azure_endpoint": ("provider", APIKey.Provider.AZURE),
    "azure_api_version": ("provider", APIKey.Provider.AZURE),
}
PROVIDER_LABELS = dict(APIKey.Provider.choices)
NEEDED_FIELDS: dict[str, dict[str, str]] = {
    APIKey.Provider.COMPATIBLE: {
        "base_url": "OpenAI-compatible keys need the base URL: fill it in, e.g. https://llm.example.com/v1."
    },
    APIKey.Provider.AZURE: {
        "azure_endpoint": "Azure OpenAI keys need the Azure endpoint: fill it in, "
        "https://<resource>.openai.azure.com.",
        "azure_api_version": "Azure OpenAI keys need the Azure API version: fill it in, e.g. 2024-10-21.",
    },
}


class APIKeyCreateForm(forms.Form):
    name = forms.CharField(
        label="Name", max_length=200, help_text="What the key is for, e.g. 'checkout service'."
    )
    kind = forms.ChoiceField(
        label="Kind",
        choices=[
            (APIKey.Kind.PROJECT, "Project key"),
            (APIKey.Kind.SERVICE_ACCOUNT, "Service-account key"),
        ],
    )
    service_account = forms.ModelChoiceField(
        queryset=None,
        required=False,
        label="Service account",
        help_text="Only for a service-account key (Kind: Service-account key).",
    )
    provider = forms.ChoiceField(label="Provider", choices=APIKey.Provider.choices)
    base_url = forms.URLField(
        label="Base URL",
        required=False,
        assume_scheme="https",
        help_text="Only for the OpenAI-compatible provider, e.g. https://llm.example.com/v1",
    )
    azure_endpoint = forms.URLField(
        label="Azure endpoint",
        required=False,
        assume_scheme="https",
        help_text="Only for Azure OpenAI: https://<resource>.openai.azure.com",
    )
    azure_api_version = forms.CharField(
        label="Azure API version",
        required=False,
        max_length=32,
        help_text="Only for Azure OpenAI, e.g. 2024-10-21.",
    )
    permissions = forms.ChoiceField(
        label="Permissions",
        choices=APIKey.Permissions.choices,
        initial=APIKey.Permissions.RESTRICTED,
        help_text="As set on the key at OpenAI; production keys should not have 'all'.",
    )
    secret = _secret_field(
        "Key", "Paste the key. It is encrypted at once and shown to you one time only."
    )
    test_connection = forms.BooleanField(
        label="Test connection (lists the models with this key)",
        required=False,
    )

    def __init__(self, *args, project: Project, **kwargs):
        super().__init__(*args, **kwargs)
        self.project = project
        # Scoped: only this project's service accounts can be chosen.
        self.fields["service_account"].queryset = project.service_accounts.all()
        self.fields["service_account"].to_field_name = "public_id"

    def rows(self) -> list[tuple[forms.BoundField, tuple[str, str] | None]]:
        """Each field with the (select, value) it applies to, or None when it always
        applies: the template marks the groups and static/key_form.js hides the others."""
        return [(self[name], APPLIES_WHEN.get(name)) for name in self.fields]

    def clean_base_url(self) -> str:
        """The server calls this URL with the key: refuse private destinations now, with
        the reason (the same check runs again on every connection)."""
        value = self.cleaned_data.get("base_url") or ""
        if (
            self.cleaned_data.get("provider") == APIKey.Provider.COMPATIBLE
        ):  # else clean() refuses it
            validate_outbound_url(value, label="Base URL")
        return value

    def clean_azure_endpoint(self) -> str:
        value = self.cleaned_data.get("azure_endpoint") or ""
        if self.cleaned_data.get("provider") == APIKey.Provider.AZURE:
            validate_outbound_url(value, label="Azure endpoint")
        return value

    @sensitive_variables("cleaned")
    def clean(self):
        cleaned = super().clean()
        kind, provider = cleaned.get("kind"), cleaned.get("provider")
        if kind == APIKey.Kind.SERVICE_ACCOUNT and not cleaned.get("service_account"):
            self.add_error("service_account", "Choose the service account that owns this key.")
        if kind == APIKey.Kind.PROJECT and cleaned.get("service_account"):
            self.add_error("service_account", "Leave the service account empty for a project key.")
        if provider is None:
            return cleaned
        # A value in a field that does not apply is refused, not silently stored: the
        # browser hides and disables these fields, so one arriving here is a mistake.
        for name, (_, applies_to) in APPLIES_WHEN.items():
            if (
                name == "service_account"
                or not self._has_value(cleaned, name)
                or provider == applies_to
            ):
                continue
            self.add_error(
                name,
                f"{self.fields[name].label} applies only to {PROVIDER_LABELS[applies_to]} "
                f"keys: clear it, or choose {PROVIDER_LABELS[applies_to]} as the provider.",
            )
        for name, message in NEEDED_FIELDS.get(provider, {}).items():
            if not self._has_value(cleaned, name) and name not in self.errors:
                self.add_error(name, message)
        return cleaned

    def _has_value(self, cleaned: dict, name: str) -> bool:
        """A field counts as filled if it was sent non-empty (even when its own cleaning failed)."""
        return bool(cleaned.get(name)) or bool((self.data.get(self.add_prefix(name)) or "").strip())


class APIKeyRotateForm(forms.Form):
    secret = _secret_field(
        "New key",
        "Paste the newly issued value; the old one stops being used by the console at once.",
    )


class PasswordConfirmForm(forms.Form):
    """Re-enter your password (before a reveal)."""

    password = forms.CharField(
        label="Your password",
        strip=False,
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
        label="I understand that nothing can use this key after it is revoked.",
        required=True,
        error_messages={"required": "Tick the box to confirm the revocation."},
    )
    reason = forms.CharField(label="Reason (optional)", required=False, max_length=255)


def apply_validation_errors(form: forms.Form, exc: ValidationError) -> None:
    """Put a service's ValidationError on the form: on its field when the form has it."""
    if hasattr(exc, "error_dict"):
        for field, errors in exc.message_dict.items():
            form.add_error(field if field in form.fields else None, errors)
    else:
        form.add_error(None, exc.messages)
