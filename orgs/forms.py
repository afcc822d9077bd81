"""Forms of the console pages. Every queryset is scoped to the object in the URL."""

from __future__ import annotations

import zoneinfo

from django import forms
from django.contrib.auth import get_user_model
from django.contrib.auth.forms import UserCreationForm
from django.core.exceptions import ValidationError

from .models import (
    Invitation,
    Organization,
    OrganizationMembership,
    Project,
    ProjectMembership,
    ServiceAccount,
)


class OrganizationForm(forms.ModelForm):
    class Meta:
        model = Organization
        fields = ["name", "tier", "openai_org_id", "billing_timezone"]

    def clean_billing_timezone(self) -> str:
        value = self.cleaned_data["billing_timezone"].strip()
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
            raise ValidationError(
                f"Unknown timezone '{value}': use an IANA name such as UTC or Europe/Paris."
            ) from exc
        return value


class ProjectCreateForm(forms.Form):
    name = forms.CharField(label="Name", max_length=200)
    environment = forms.ChoiceField(
        label="Environment", choices=Project.Environment.choices,
        initial=Project.Environment.DEVELOPMENT,
    )

    def __init__(self, *args, organization: Organization, **kwargs):
        super().__init__(*args, **kwargs)
        self.organization = organization

    def clean_name(self) -> str:
        name = self.cleaned_data["name"].strip()
        if Project.objects.filter(organization=self.organization, name__iexact=name).exists():
            raise ValidationError(f"A project named '{name}' already exists here: choose another name.")
        return name


def _catalog_model_ids() -> set[str]:
    # The usage app owns the catalog; read ids only, to validate what people type.
    from usage.models import CatalogModel

    return set(CatalogModel.objects.values_list("model_id", flat=True))


class ProjectSettingsForm(forms.ModelForm):
    allowed_models = forms.CharField(
        label="Allowed models", required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="Model ids, one per line or separated by commas; empty allows every catalog model.",
    )

    class Meta:
        model = Project
        fields = [
            "name", "environment", "status", "openai_project_id", "allowed_models",
            "max_output_tokens", "rotation_period_days", "request_timeout_seconds",
            "connect_timeout_seconds", "max_retries", "circuit_breaker_enabled",
        ]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance and isinstance(self.instance.allowed_models, list):
            self.initial["allowed_models"] = "\n".join(self.instance.allowed_models)

    def clean_allowed_models(self) -> list[str]:
        raw = self.cleaned_data.get("allowed_models") or ""
        ids = []
        for part in raw.replace(",", "\n").splitlines():
            part = part.strip()
            if part and part not in ids:
                ids.append(part)
        catalog = _catalog_model_ids()
        unknown = [m for m in ids if catalog and m not in catalog]
        if unknown:
            raise ValidationError(
                f"Not in the model catalog: {', '.join(unknown)}. Check the spelling "
                "(e.g. gpt-5-mini) or add the model to the catalog first."
            )
        return ids

    def clean_name(self) -> str:
        name = self.cleaned_data["name"].strip()
        clash = Project.objects.filter(organization=self.instance.organization, name__iexact=name)
        if clash.exclude(pk=self.instance.pk).exists():
            raise ValidationError(f"A project named '{name}' already exists here: choose another name.")
        return name


class ModelLimitForm(forms.Form):
    model_id = forms.CharField(label="Model", max_length=100)
    rpm = forms.IntegerField(label="Requests per minute", required=False, min_value=1)
    tpm = forms.IntegerField(label="Tokens per minute", required=False, min_value=1)

    def clean_model_id(self) -> str:
        model_id = self.cleaned_data["model_id"].strip()
        catalog = _catalog_model_ids()
        if catalog and model_id not in catalog:
            raise ValidationError(f"'{model_id}' is not in the model catalog: check the spelling.")
        return model_id

    def clean(self):
        cleaned = super().clean()
        if not self.errors and cleaned.get("rpm") is None and cleaned.get("tpm") is None:
            self.add_error("rpm", "Give an RPM limit, a TPM limit or both.")
        return cleaned


class ModelLimitRemoveForm(forms.Form):
    limit = forms.ModelChoiceField(queryset=None, label="Override")

    def __init__(self, *args, project: Project, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["limit"].queryset = project.model_limits.all()


class OrganizationInviteForm(forms.Form):
    """Invite an address to the organization, or to some of its projects (org owners)."""

    email = forms.EmailField(label="E-mail address", max_length=254)
    role = forms.ChoiceField(label="Role", choices=Invitation.Role.choices,
                             initial=Invitation.Role.ORG_READER)
    projects = forms.ModelMultipleChoiceField(
        queryset=None, label="Projects", required=False, widget=forms.CheckboxSelectMultiple,
        help_text="For a project role only: the projects the invitee joins.",
    )

    def __init__(self, *args, organization: Organization, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["projects"].queryset = organization.projects.order_by("name")
        self.fields["projects"].to_field_name = "public_id"

    def clean(self):
        cleaned = super().clean()
        role, projects = cleaned.get("role"), cleaned.get("projects")
        if role in (Invitation.Role.PROJECT_OWNER, Invitation.Role.PROJECT_MEMBER) and not projects:
            self.add_error("projects", "Choose at least one project for a project role.")
        if role in (Invitation.Role.ORG_OWNER, Invitation.Role.ORG_READER) and projects:
            self.add_error("projects", "An organization role covers every project: untick the projects.")
        return cleaned


class ProjectInviteForm(forms.Form):
    """Invite an address to one project (its owners, or org owners)."""

    ROLES = {ProjectMembership.Role.OWNER: Invitation.Role.PROJECT_OWNER,
             ProjectMembership.Role.MEMBER: Invitation.Role.PROJECT_MEMBER}

    email = forms.EmailField(label="E-mail address", max_length=254)
    role = forms.ChoiceField(label="Role", choices=ProjectMembership.Role.choices,
                             initial=ProjectMembership.Role.MEMBER)

    def invitation_role(self) -> str:
        return self.ROLES[self.cleaned_data["role"]]


class InvitationForm(forms.Form):
    """Pick one of this organization's open invitations (scoped queryset), by public id."""

    invitation = forms.ModelChoiceField(queryset=None, label="Invitation", to_field_name="public_id")

    def __init__(self, *args, organization: Organization, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["invitation"].queryset = Invitation.objects.filter(
            organization=organization, accepted_at__isnull=True, revoked_at__isnull=True)


class InvitationAccountForm(UserCreationForm):
    """A new account from an invitation link: username and password (Django's validators
    run with the invited address on the account, so a password like the address fails)."""

    class Meta(UserCreationForm.Meta):
        model = get_user_model()
        fields = ("username",)

    def __init__(self, *args, email: str, **kwargs):
        kwargs.setdefault("instance", get_user_model()(email=email))
        super().__init__(*args, **kwargs)


class OrganizationMembershipForm(forms.Form):
    """Pick one of this organization's memberships (scoped queryset) and a role."""

    membership = forms.ModelChoiceField(queryset=None, label="Member")
    role = forms.ChoiceField(label="Role", choices=OrganizationMembership.Role.choices, required=False)

    def __init__(self, *args, organization: Organization, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["membership"].queryset = OrganizationMembership.objects.filter(
            organization=organization).select_related("user")


class ProjectMembershipForm(forms.Form):
    membership = forms.ModelChoiceField(queryset=None, label="Member")
    role = forms.ChoiceField(label="Role", choices=ProjectMembership.Role.choices, required=False)

    def __init__(self, *args, project: Project, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["membership"].queryset = ProjectMembership.objects.filter(
            project=project).select_related("user")


class ServiceAccountForm(forms.Form):
    name = forms.CharField(label="Name", max_length=200)
    openai_id = forms.CharField(label="OpenAI id", max_length=64, required=False,
                                help_text="user-… id of the service account at OpenAI, if known")

    def __init__(self, *args, project: Project, **kwargs):
        super().__init__(*args, **kwargs)
        self.project = project

    def clean_name(self) -> str:
        name = self.cleaned_data["name"].strip()
        if ServiceAccount.objects.filter(project=self.project, name__iexact=name).exists():
            raise ValidationError(f"A service account named '{name}' already exists in this project.")
        return name


class AuditFilterForm(forms.Form):
    action = forms.CharField(label="Action", required=False,
                             help_text="Prefix, e.g. key. or auth.login")
    actor = forms.CharField(label="Who", required=False)
    project = forms.ModelChoiceField(queryset=None, label="Project", required=False)
    since = forms.DateField(label="From (UTC)", required=False,
                            widget=forms.DateInput(attrs={"type": "date"}))
    until = forms.DateField(label="To (UTC)", required=False,
                            widget=forms.DateInput(attrs={"type": "date"}))

    def __init__(self, *args, projects, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["project"].queryset = projects
        self.fields["project"].to_field_name = "public_id"

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("since") and cleaned.get("until") and cleaned["since"] > cleaned["until"]:
            self.add_error("until", "The end date is before the start date: swap them.")
        return cleaned
