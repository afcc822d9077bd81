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
from .services import ORGANIZATION_FIELDS, PROJECT_SETTINGS_FIELDS

# Shown first in the timezone select: where most billing offices are.
COMMON_TIMEZONES = [
    "UTC",
    "America/New_York",
    "America/Chicago",
    "America/Denver",
    "America/Los_Angeles",
    "America/Sao_Paulo",
    "Europe/London",
    "Europe/Paris",
    "Europe/Berlin",
    "Africa/Johannesburg",
    "Asia/Dubai",
    "Asia/Kolkata",
    "Asia/Singapore",
    "Asia/Shanghai",
    "Asia/Tokyo",
    "Australia/Sydney",
]


def timezone_choices(current: str = "") -> list:
    """Every IANA timezone this Python knows, common ones first, each listed once
    (a value listed twice would render two selected options)."""
    # "localtime" is this host's zone and "Factory" no place at all: neither is a billing office.
    known = zoneinfo.available_timezones() - {"localtime", "Factory"}
    common = [tz for tz in COMMON_TIMEZONES if tz in known or tz == "UTC"]
    rest = sorted(known - set(common))
    if current and current not in known and current not in common:
        rest = sorted([*rest, current])  # a stored value outside the list stays selectable
    return [("Common", [(tz, tz) for tz in common]), ("All timezones", [(tz, tz) for tz in rest])]


def timezone_field(*, current: str = "") -> forms.ChoiceField:
    return forms.ChoiceField(
        label="Billing timezone",
        choices=timezone_choices(current),
        initial="UTC",
        help_text="Budget months start at midnight in this timezone.",
        error_messages={
            "invalid_choice": "Unknown timezone '%(value)s': choose one from the list "
            "(IANA names such as UTC or Europe/Paris)."
        },
    )


def _clean_timezone(value: str) -> str:
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
        raise ValidationError(
            f"Unknown timezone '{value}': choose one from the list (IANA names such as UTC or Europe/Paris)."
        ) from exc
    return value


class OrganizationForm(forms.ModelForm):
    class Meta:
        model = Organization
        fields = ORGANIZATION_FIELDS

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["billing_timezone"] = timezone_field(
            current=self.instance.billing_timezone or ""
        )

    def clean_billing_timezone(self) -> str:
        return _clean_timezone(self.cleaned_data["billing_timezone"])


class OrganizationCreateForm(forms.Form):
    """A new organization: the slug is made from the name unless given."""

    name = forms.CharField(
        label="Name", max_length=200, help_text="Your company or team, as people know it."
    )
    slug = forms.SlugField(
        label="Slug",
        max_length=80,
        required=False,
        help_text="Short name used in file names (e.g. the audit CSV); leave empty to make it from the name.",
    )
    tier = forms.ChoiceField(
        label="Usage tier",
        choices=Organization.Tier.choices,
        initial=Organization.Tier.TIER_1,
        help_text="As shown on your OpenAI limits page; it sets the default RPM/TPM.",
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["billing_timezone"] = timezone_field()

    def clean_name(self) -> str:
        name = self.cleaned_data["name"].strip()
        if not name:
            raise ValidationError("Give the organization a name.")
        return name

    def clean_billing_timezone(self) -> str:
        return _clean_timezone(self.cleaned_data["billing_timezone"])


class ProjectCreateForm(forms.Form):
    name = forms.CharField(label="Name", max_length=200)
    environment = forms.ChoiceField(
        label="Environment",
        choices=Project.Environment.choices,
        initial=Project.Environment.DEVELOPMENT,
    )

    def __init__(self, *args, organization: Organization, **kwargs):
        super().__init__(*args, **kwargs)
        self.organization = organization

    def clean_name(self) -> str:
        name = self.cleaned_data["name"].strip()
        if Project.objects.filter(organization=self.organization, name__iexact=name).exists():
            raise ValidationError(
                f"A project named '{name}' already exists here: choose another name."
            )
        return name


def allowed_model_choices(current: list[str], catalog: list) -> list:
    """Checkbox groups by catalog category (in the catalog's own order); inactive models
    only when already allowed, and ids no longer in the catalog in a group of their own,
    so saving the page never drops a choice silently. ``catalog``: every catalog model,
    inactive ones too (usage.selectors.catalog_models, read by the caller: orgs does not
    read usage's tables)."""
    groups: dict[str, list] = {}
    labels: dict[str, str] = {}
    known = set()
    models = list(catalog)
    # The categories' own order (the model-tier table), from the field's choices.
    order = [value for value, _ in models[0]._meta.get_field("category").choices] if models else []
    for model in models:
        known.add(model.model_id)
        if not model.is_active and model.model_id not in current:
            continue
        label = model.model_id if model.is_active else f"{model.model_id} (inactive)"
        groups.setdefault(model.category, []).append((model.model_id, label))
        labels[model.category] = model.get_category_display()
    choices = [
        (labels[c], groups[c])
        for c in sorted(groups, key=lambda c: (order.index(c) if c in order else len(order), c))
    ]
    missing = [m for m in current if m not in known]
    if missing:
        choices.append(("Not in the catalog", [(m, m) for m in missing]))
    return choices


class ProjectSettingsForm(forms.ModelForm):
    allowed_models = forms.MultipleChoiceField(
        label="Allowed models",
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="Tick the models this project may call; none ticked allows every catalog model.",
        error_messages={
            "invalid_choice": "Not in the model catalog: %(value)s. Tick models from the list "
            "(add a model to the catalog first if it is missing)."
        },
    )

    class Meta:
        model = Project
        fields = PROJECT_SETTINGS_FIELDS  # the service's list: what the form edits, it saves
        help_texts = {
            "max_output_tokens": "Upper bound on the output tokens of any call; empty means no cap."
        }

    def __init__(self, *args, catalog: list, **kwargs):
        super().__init__(*args, **kwargs)
        current = (
            list(self.instance.allowed_models or [])
            if isinstance(self.instance.allowed_models, list)
            else []
        )
        self.fields["allowed_models"].choices = allowed_model_choices(current, catalog)
        self.initial["allowed_models"] = current

    def allowed_model_groups(self) -> list[tuple[str, list]]:
        """The allowed-models checkboxes cut into their category groups, for the template
        (Django's own rendering labels a group like a field)."""
        boxes = list(self["allowed_models"])
        groups, start = [], 0
        for label, options in self.fields["allowed_models"].choices:
            groups.append((label, boxes[start : start + len(options)]))
            start += len(options)
        return groups

    def clean_allowed_models(self) -> list[str]:
        ids: list[str] = []
        for model_id in self.cleaned_data.get("allowed_models") or []:
            if model_id not in ids:
                ids.append(model_id)
        return ids

    def clean_name(self) -> str:
        name = self.cleaned_data["name"].strip()
        clash = Project.objects.filter(organization=self.instance.organization, name__iexact=name)
        if clash.exclude(pk=self.instance.pk).exists():
            raise ValidationError(
                f"A project named '{name}' already exists here: choose another name."
            )
        return name


class ModelLimitForm(forms.Form):
    model_id = forms.CharField(label="Model", max_length=100)
    rpm = forms.IntegerField(label="Requests per minute", required=False, min_value=1)
    tpm = forms.IntegerField(label="Tokens per minute", required=False, min_value=1)

    def __init__(self, *args, catalog_ids: set[str], **kwargs):
        """``catalog_ids``: every catalog model id, inactive ones too, from the caller
        (usage.selectors); empty for the unbound form a page only shows."""
        super().__init__(*args, **kwargs)
        self.catalog_ids = catalog_ids

    def clean_model_id(self) -> str:
        model_id = self.cleaned_data["model_id"].strip()
        catalog = self.catalog_ids
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
    role = forms.ChoiceField(
        label="Role", choices=Invitation.Role.choices, initial=Invitation.Role.ORG_READER
    )
    projects = forms.ModelMultipleChoiceField(
        queryset=None,
        label="Projects",
        required=False,
        widget=forms.CheckboxSelectMultiple,
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
            self.add_error(
                "projects", "An organization role covers every project: untick the projects."
            )
        return cleaned


class ProjectInviteForm(forms.Form):
    """Invite an address to one project (its owners, or org owners)."""

    ROLES = {
        ProjectMembership.Role.OWNER: Invitation.Role.PROJECT_OWNER,
        ProjectMembership.Role.MEMBER: Invitation.Role.PROJECT_MEMBER,
    }

    email = forms.EmailField(label="E-mail address", max_length=254)
    role = forms.ChoiceField(
        label="Role", choices=ProjectMembership.Role.choices, initial=ProjectMembership.Role.MEMBER
    )

    def invitation_role(self) -> str:
        return self.ROLES[self.cleaned_data["role"]]


class InvitationForm(forms.Form):
    """Pick one of this organization's open invitations (scoped queryset), by public id."""

    invitation = forms.ModelChoiceField(
        queryset=None, label="Invitation", to_field_name="public_id"
    )

    def __init__(self, *args, organization: Organization, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["invitation"].queryset = Invitation.objects.filter(
            organization=organization, accepted_at__isnull=True, revoked_at__isnull=True
        )


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
    role = forms.ChoiceField(
        label="Role", choices=OrganizationMembership.Role.choices, required=False
    )

    def __init__(self, *args, organization: Organization, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["membership"].queryset = OrganizationMembership.objects.filter(
            organization=organization
        ).select_related("user")


class ProjectMembershipForm(forms.Form):
    membership = forms.ModelChoiceField(queryset=None, label="Member")
    role = forms.ChoiceField(label="Role", choices=ProjectMembership.Role.choices, required=False)

    def __init__(self, *args, project: Project, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["membership"].queryset = ProjectMembership.objects.filter(
            project=project
        ).select_related("user")


class ServiceAccountForm(forms.Form):
    name = forms.CharField(label="Name", max_length=200)
    openai_id = forms.CharField(
        label="OpenAI id",
        max_length=64,
        required=False,
        help_text="user-… id of the service account at OpenAI, if known",
    )

    def __init__(self, *args, project: Project, **kwargs):
        super().__init__(*args, **kwargs)
        self.project = project

    def clean_name(self) -> str:
        name = self.cleaned_data["name"].strip()
        if ServiceAccount.objects.filter(project=self.project, name__iexact=name).exists():
            raise ValidationError(
                f"A service account named '{name}' already exists in this project."
            )
        return name


def audit_action_choices(actions: list[str]) -> list:
    """ "All actions", each family ("key." → every key action) and each action that exists.
    A family value ends with a dot and filters by prefix; an action filters exactly."""
    families = sorted({a.split(".", 1)[0] + "." for a in actions if "." in a})
    return [
        ("", "All actions"),
        ("Families", [(f, f"{f}* (every {f[:-1].replace('_', ' ')} action)") for f in families]),
        ("Actions", [(a, a) for a in actions]),
    ]


class AuditFilterForm(forms.Form):
    action = forms.ChoiceField(
        label="Action",
        required=False,
        choices=[("", "All actions")],
        error_messages={
            "invalid_choice": "No event has the action '%(value)s': choose one from the list."
        },
    )
    actor = forms.CharField(label="Who", required=False)
    project = forms.ModelChoiceField(
        queryset=None, label="Project", required=False, empty_label="All projects"
    )
    since = forms.DateField(
        label="From (UTC)", required=False, widget=forms.DateInput(attrs={"type": "date"})
    )
    until = forms.DateField(
        label="To (UTC)", required=False, widget=forms.DateInput(attrs={"type": "date"})
    )

    def __init__(self, *args, projects, actions: list[str], **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["action"].choices = audit_action_choices(actions)
        self.fields["project"].queryset = projects
        self.fields["project"].to_field_name = "public_id"

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("since") and cleaned.get("until") and cleaned["since"] > cleaned["until"]:
            self.add_error("until", "The end date is before the start date: swap them.")
        return cleaned
