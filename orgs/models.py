"""Organizations, projects, service accounts and who may do what in them.

Mirrors OpenAI's own hierarchy and roles: organization owner / reader, project
owner / member.
"""

from __future__ import annotations

import base64
import uuid
from urllib.parse import quote

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables
from django_otp.models import Device, ThrottlingMixin
from django_otp.oath import TOTP

from keys.fields import EncryptedSecretField, unseal

# The tier table (shared/data/openai-models.json): default requests and tokens per minute.
TIER_LIMITS: dict[str, tuple[int, int]] = {
    "free": (3, 40_000),
    "tier_1": (500, 200_000),
    "tier_2": (5_000, 2_000_000),
    "tier_3": (5_000, 10_000_000),
    "tier_4": (10_000, 50_000_000),
}


class TimestampedModel(models.Model):
    created_at = models.DateTimeField("created at", auto_now_add=True)
    updated_at = models.DateTimeField("updated at", auto_now=True)

    class Meta:
        abstract = True


class AppendOnlyModel(models.Model):
    """A history table: rows are written once, never changed or deleted one by one (the
    audit log, a key's events). Each names its own messages."""

    changed_message = "Rows of this table are append-only; they cannot be changed."
    deleted_message = "Rows of this table are append-only; they cannot be deleted."

    class Meta:
        abstract = True

    def save(self, *args, **kwargs):
        if self.pk is not None:
            raise PermissionError(self.changed_message)
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise PermissionError(self.deleted_message)


class Organization(TimestampedModel):
    """A company's OpenAI organization: the top of the hierarchy and the tenant boundary."""

    class Tier(models.TextChoices):
        FREE = "free", "Free"
        TIER_1 = "tier_1", "Tier 1"
        TIER_2 = "tier_2", "Tier 2"
        TIER_3 = "tier_3", "Tier 3"
        TIER_4 = "tier_4", "Tier 4+"

    public_id = models.UUIDField("public id", default=uuid.uuid4, unique=True, editable=False)
    name = models.CharField("name", max_length=200)
    slug = models.SlugField("slug", max_length=80, unique=True)
    tier = models.CharField("usage tier", max_length=16, choices=Tier, default=Tier.TIER_1)
    openai_org_id = models.CharField(
        "OpenAI organization id", max_length=64, blank=True, help_text="org-…, if known"
    )
    billing_timezone = models.CharField(
        "billing timezone",
        max_length=64,
        default="UTC",
        help_text="Budget months start at midnight in this timezone.",
    )

    class Meta:
        ordering = ["name"]
        verbose_name = "organization"

    def __str__(self) -> str:
        return self.name

    @property
    def default_rpm(self) -> int:
        """Requests per minute of the organization's tier."""
        return TIER_LIMITS[self.tier][0]

    @property
    def default_tpm(self) -> int:
        """Tokens per minute of the organization's tier."""
        return TIER_LIMITS[self.tier][1]


class OrganizationMembership(TimestampedModel):
    """A user's role in an organization: owners manage everything, readers read everything."""

    class Role(models.TextChoices):
        OWNER = "owner", "Owner"
        READER = "reader", "Reader"

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="organization_memberships",
        verbose_name="user",
    )
    organization = models.ForeignKey(
        Organization,
        on_delete=models.CASCADE,
        related_name="memberships",
        verbose_name="organization",
    )
    role = models.CharField("role", max_length=16, choices=Role, default=Role.READER)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["user", "organization"],
                name="orgs_orgmembership_unique_user_org",
                violation_error_message="This user is already a member of the organization.",
            ),
        ]
        verbose_name = "organization membership"

    def __str__(self) -> str:
        return f"{self.user} — {self.role} of {self.organization}"


class Project(TimestampedModel):
    """A project: keys, service accounts, limits and budget live here."""

    class Environment(models.TextChoices):
        PRODUCTION = "production", "Production"
        STAGING = "staging", "Staging"
        DEVELOPMENT = "development", "Development"
        RESEARCH = "research", "Research"

    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        ARCHIVED = "archived", "Archived"

    public_id = models.UUIDField("public id", default=uuid.uuid4, unique=True, editable=False)
    organization = models.ForeignKey(
        Organization,
        on_delete=models.CASCADE,
        related_name="projects",
        verbose_name="organization",
    )
    name = models.CharField("name", max_length=200)
    environment = models.CharField(
        "environment", max_length=16, choices=Environment, default=Environment.DEVELOPMENT
    )
    openai_project_id = models.CharField(
        "OpenAI project id", max_length=64, blank=True, help_text="proj_…, if known"
    )
    status = models.CharField("status", max_length=16, choices=Status, default=Status.ACTIVE)
    allowed_models = models.JSONField(
        "allowed models",
        default=list,
        blank=True,
        help_text="Model ids this project may call; empty means every catalog model.",
    )
    max_output_tokens = models.PositiveIntegerField(
        "output-token cap",
        null=True,
        blank=True,
        help_text="Upper bound on the output tokens any call may ask for; empty means no cap.",
    )
    rotation_period_days = models.PositiveIntegerField(
        "rotation period (days)",
        default=90,
        validators=[MinValueValidator(1), MaxValueValidator(3650)],
        help_text="Keys older than this since their last rotation are due (90 = quarterly).",
    )
    # Client settings, defaults as the SDK guide recommends for production.
    request_timeout_seconds = models.FloatField(
        "request timeout (s)",
        default=60.0,
        validators=[MinValueValidator(1.0), MaxValueValidator(600.0)],
    )
    connect_timeout_seconds = models.FloatField(
        "connect timeout (s)",
        default=5.0,
        validators=[MinValueValidator(0.5), MaxValueValidator(60.0)],
    )
    max_retries = models.PositiveSmallIntegerField(
        "max retries", default=3, validators=[MaxValueValidator(10)]
    )
    circuit_breaker_enabled = models.BooleanField("circuit breaker on", default=True)
    # Automated rotation of service-account keys (the Admin API sync): when due, a new key
    # is created, verified and made current; the old one is deleted upstream after the grace.
    auto_rotate_service_account_keys = models.BooleanField(
        "rotate service-account keys automatically",
        default=False,
        help_text="When a service-account key is due, replace it through OpenAI's Admin API.",
    )
    rotation_grace_hours = models.PositiveIntegerField(
        "rotation grace period (hours)",
        default=24,
        validators=[MaxValueValidator(24 * 90)],
        help_text="How long the previous key keeps working after a rotation, for redeploys.",
    )
    upstream_synced_at = models.DateTimeField("last seen upstream", null=True, blank=True)

    class Meta:
        ordering = ["organization__name", "name"]
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "name"],
                name="orgs_project_unique_name_per_org",
                violation_error_message="A project with this name already exists in the organization.",
            ),
            models.UniqueConstraint(
                fields=["organization", "openai_project_id"],
                condition=~models.Q(openai_project_id=""),
                name="orgs_project_unique_openai_id",
                violation_error_message="This OpenAI project is already linked to another project here.",
            ),
            models.CheckConstraint(
                condition=models.Q(rotation_period_days__gte=1),
                name="orgs_project_rotation_period_positive",
                violation_error_message="The rotation period must be at least one day.",
            ),
        ]
        verbose_name = "project"

    def __str__(self) -> str:
        return f"{self.organization.name} / {self.name}"


class ProjectModelLimit(TimestampedModel):
    """A per-model RPM/TPM override for a project (else the tier defaults apply)."""

    project = models.ForeignKey(
        Project, on_delete=models.CASCADE, related_name="model_limits", verbose_name="project"
    )
    model_id = models.CharField("model", max_length=100)
    rpm = models.PositiveIntegerField("requests per minute", null=True, blank=True)
    tpm = models.PositiveIntegerField("tokens per minute", null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["project", "model_id"],
                name="orgs_modellimit_unique_project_model",
                violation_error_message="This model already has a limit in this project.",
            ),
        ]
        verbose_name = "per-model rate limit"

    def __str__(self) -> str:
        return f"{self.model_id}: {self.rpm or '-'} RPM / {self.tpm or '-'} TPM"


class ProjectMembership(TimestampedModel):
    """A user's role in a project: owners manage it, members use and read it."""

    class Role(models.TextChoices):
        OWNER = "owner", "Owner"
        MEMBER = "member", "Member"

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="project_memberships",
        verbose_name="user",
    )
    project = models.ForeignKey(
        Project, on_delete=models.CASCADE, related_name="memberships", verbose_name="project"
    )
    role = models.CharField("role", max_length=16, choices=Role, default=Role.MEMBER)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["user", "project"],
                name="orgs_projmembership_unique_user_project",
                violation_error_message="This user is already a member of the project.",
            ),
        ]
        verbose_name = "project membership"

    def __str__(self) -> str:
        return f"{self.user} — {self.role} of {self.project}"


class ServiceAccount(TimestampedModel):
    """A non-human identity in a project; its keys are service-account keys."""

    public_id = models.UUIDField("public id", default=uuid.uuid4, unique=True, editable=False)
    project = models.ForeignKey(
        Project,
        on_delete=models.CASCADE,
        related_name="service_accounts",
        verbose_name="project",
    )
    name = models.CharField("name", max_length=200)
    openai_id = models.CharField("OpenAI id", max_length=64, blank=True)
    deleted_upstream_at = models.DateTimeField("deleted upstream", null=True, blank=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            # Names are unique among the accounts made here; OpenAI allows two accounts of
            # one name, so accounts linked to OpenAI are unique by their OpenAI id instead.
            models.UniqueConstraint(
                fields=["project", "name"],
                condition=models.Q(openai_id=""),
                name="orgs_serviceaccount_unique_name_per_project",
                violation_error_message="A service account with this name already exists in the project.",
            ),
            models.UniqueConstraint(
                fields=["project", "openai_id"],
                condition=~models.Q(openai_id=""),
                name="orgs_serviceaccount_unique_openai_id",
                violation_error_message="This OpenAI service account is already linked here.",
            ),
        ]
        verbose_name = "service account"

    def __str__(self) -> str:
        return f"{self.name} ({self.project.name})"


class AuditEventQuerySet(models.QuerySet):
    """Append-only: bulk updates and deletes are refused."""

    def update(self, **kwargs):
        raise PermissionError("Audit events are append-only; they cannot be updated.")

    def delete(self):
        raise PermissionError("Audit events are append-only; they cannot be deleted.")


class AuditEvent(AppendOnlyModel):
    """Who did what, when (UTC), from which IP, on what. Append-only.

    Written only through ``orgs.audit.audit_log``; never edited or deleted (the model,
    its queryset and the Django admin all refuse).
    """

    public_id = models.UUIDField("public id", default=uuid.uuid4, unique=True, editable=False)
    occurred_at = models.DateTimeField("when (UTC)", db_index=True)
    organization = models.ForeignKey(
        Organization,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="audit_events",
        verbose_name="organization",
    )
    project = models.ForeignKey(
        Project,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="audit_events",
        verbose_name="project",
    )
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name="actor",
    )
    actor_label = models.CharField(
        "actor name",
        max_length=150,
        blank=True,
        help_text="Username at the time (kept if the user is deleted), or 'system'.",
    )
    action = models.CharField("action", max_length=64, db_index=True)
    target_type = models.CharField("target type", max_length=64, blank=True)
    target_id = models.CharField("target id", max_length=64, blank=True)
    target_label = models.CharField("target", max_length=255, blank=True)
    ip_address = models.GenericIPAddressField("IP address", null=True, blank=True)
    detail = models.JSONField("detail", default=dict, blank=True)

    objects = AuditEventQuerySet.as_manager()
    changed_message = "Audit events are append-only; they cannot be changed."
    deleted_message = "Audit events are append-only; they cannot be deleted."

    class Meta:
        ordering = ["-occurred_at", "-id"]
        indexes = [
            models.Index(fields=["organization", "-occurred_at"], name="orgs_audit_org_time"),
        ]
        verbose_name = "audit event"

    def __str__(self) -> str:
        return f"{self.occurred_at:%Y-%m-%d %H:%M:%S} {self.actor_label} {self.action} {self.target_label}"


class InvitationQuerySet(models.QuerySet):
    def pending(self, *, now=None):
        """Not accepted, not revoked, not expired: the ones whose link still works."""
        return self.filter(
            accepted_at__isnull=True, revoked_at__isnull=True, expires_at__gt=now or timezone.now()
        )


class Invitation(TimestampedModel):
    """An invitation of an e-mail address to an organization or to some of its projects.

    Nobody is attached to an organization without consent: the invitee accepts through a
    one-time link sent to the address. Only an HMAC-SHA256 of the link's token is stored
    (``orgs.services.invitation_token_digest``); a resend replaces it, so the old link dies.
    """

    class Role(models.TextChoices):
        ORG_OWNER = "org_owner", "Organization owner"
        ORG_READER = "org_reader", "Organization reader"
        PROJECT_OWNER = "project_owner", "Project owner"
        PROJECT_MEMBER = "project_member", "Project member"

    public_id = models.UUIDField("public id", default=uuid.uuid4, unique=True, editable=False)
    organization = models.ForeignKey(
        Organization,
        on_delete=models.CASCADE,
        related_name="invitations",
        verbose_name="organization",
    )
    email = models.EmailField("e-mail address", max_length=254)
    role = models.CharField("role", max_length=16, choices=Role)
    projects = models.ManyToManyField(
        Project,
        blank=True,
        related_name="invitations",
        verbose_name="projects",
        help_text="For a project role: the projects the invitee joins.",
    )
    token_digest = models.CharField("token HMAC-SHA256", max_length=64, unique=True, editable=False)
    expires_at = models.DateTimeField("expires at")
    invited_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name="invited by",
    )
    sent_count = models.PositiveSmallIntegerField("times sent", default=1)
    last_sent_at = models.DateTimeField("last sent at")
    accepted_at = models.DateTimeField("accepted at", null=True, blank=True)
    accepted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name="accepted by",
    )
    revoked_at = models.DateTimeField("revoked at", null=True, blank=True)

    objects = InvitationQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "email", "role"],
                condition=models.Q(accepted_at__isnull=True, revoked_at__isnull=True),
                name="orgs_invitation_unique_open_per_org_email_role",
                violation_error_message="This address already has an open invitation with this role: resend it.",
            ),
            models.CheckConstraint(
                condition=models.Q(accepted_at__isnull=True) | models.Q(revoked_at__isnull=True),
                name="orgs_invitation_not_accepted_and_revoked",
                violation_error_message="An invitation is either accepted or revoked, not both.",
            ),
        ]
        verbose_name = "invitation"

    def __str__(self) -> str:
        return f"{self.email} — {self.get_role_display()} of {self.organization}"

    @property
    def is_project_role(self) -> bool:
        return self.role in (self.Role.PROJECT_OWNER, self.Role.PROJECT_MEMBER)

    def status(self, now=None) -> str:
        """pending, accepted, revoked or expired (for pages and the admin)."""
        if self.accepted_at:
            return "accepted"
        if self.revoked_at:
            return "revoked"
        if self.expires_at <= (now or timezone.now()):
            return "expired"
        return "pending"


# --- Two-factor --------------------------------------------------------------------
# django-otp's own otp_totp.TOTPDevice keeps its seed as clear hex; this device keeps it
# sealed (keys/fields.py). Services, QR rendering and the gate: orgs/otp.py.

TOTP_STEP_SECONDS = 30
TOTP_DIGITS = 6
TOTP_TOLERANCE_STEPS = 1  # accept the previous and the next code too (clock drift)
TOTP_ISSUER = "Platform Console"


class TOTPDevice(ThrottlingMixin, Device):
    """An authenticator app of a user; the seed is stored sealed (AES-256-GCM)."""

    public_id = models.UUIDField("public id", default=uuid.uuid4, unique=True, editable=False)
    # Ciphertext only (bound to this row by public_id); see keys/fields.py.
    seed = EncryptedSecretField("seed (encrypted)")
    last_t = models.BigIntegerField(
        "last accepted time step",
        default=-1,
        help_text="A code is accepted once: later codes must be from a later time step.",
    )
    created_at = models.DateTimeField("created at", auto_now_add=True)

    class Meta:
        app_label = "orgs"
        verbose_name = "TOTP device"

    def __str__(self) -> str:
        return f"{self.name} ({'confirmed' if self.confirmed else 'unconfirmed'})"

    def get_throttle_factor(self) -> int:
        return getattr(settings, "OTP_TOTP_THROTTLE_FACTOR", 1)

    def _totp(self) -> TOTP:
        # The seed is unsealed only for the duration of this check.
        return TOTP(
            base64.b32decode(unseal(self, "seed")), step=TOTP_STEP_SECONDS, digits=TOTP_DIGITS
        )

    @sensitive_variables("token")
    def verify_token(self, token) -> bool:
        """True if ``token`` is the current code (±1 step) and was not used before."""
        allowed, _ = self.verify_is_allowed()
        if not allowed:
            return False
        try:
            value = int(str(token).strip())
        except (TypeError, ValueError):
            return False
        totp = self._totp()
        ok = totp.verify(value, tolerance=TOTP_TOLERANCE_STEPS, min_t=self.last_t + 1)
        if ok:
            self.last_t = totp.t()
            self.throttle_reset(commit=False)
            self.save(
                update_fields=["last_t", "throttling_failure_timestamp", "throttling_failure_count"]
            )
        else:
            self.throttle_increment(commit=True)
        return ok

    def config_url(self, seed_b32: str, username: str) -> str:
        """The otpauth:// URL an authenticator app reads from the QR code."""
        label = quote(f"{TOTP_ISSUER}:{username}")
        return (
            f"otpauth://totp/{label}?secret={seed_b32}&issuer={quote(TOTP_ISSUER)}"
            f"&digits={TOTP_DIGITS}&period={TOTP_STEP_SECONDS}"
        )
