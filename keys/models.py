"""API keys: stored encrypted, shown by hint, fingerprinted for duplicate detection."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models

from orgs.models import AppendOnlyModel, Organization, Project, ServiceAccount, TimestampedModel

from .fields import EncryptedSecretField


class APIKey(TimestampedModel):
    """One OpenAI (or Azure / OpenAI-compatible) key.

    ``secret`` holds only ciphertext (see keys/fields.py); ``hint`` is what people
    see; ``fingerprint`` is an HMAC that refuses the same key twice in one organization.
    """

    class Kind(models.TextChoices):
        PROJECT = "project", "Project key"
        SERVICE_ACCOUNT = "service_account", "Service-account key"
        ADMIN = "admin", "Admin key"

    class Provider(models.TextChoices):
        OPENAI = "openai", "OpenAI"
        AZURE = "azure", "Azure OpenAI"
        COMPATIBLE = "compatible", "OpenAI-compatible"

    class Permissions(models.TextChoices):
        ALL = "all", "All"
        RESTRICTED = "restricted", "Restricted"
        READ_ONLY = "read_only", "Read only"

    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        REVOKED = "revoked", "Revoked"
        DELETED_UPSTREAM = "deleted_upstream", "Deleted upstream"

    public_id = models.UUIDField("public id", default=uuid.uuid4, unique=True, editable=False)
    organization = models.ForeignKey(
        Organization,
        on_delete=models.CASCADE,
        related_name="api_keys",
        verbose_name="organization",
    )
    project = models.ForeignKey(
        Project,
        on_delete=models.CASCADE,
        related_name="api_keys",
        null=True,
        blank=True,
        verbose_name="project",
        help_text="Empty only for admin keys.",
    )
    service_account = models.ForeignKey(
        ServiceAccount,
        on_delete=models.SET_NULL,
        related_name="api_keys",
        null=True,
        blank=True,
        verbose_name="service account",
    )
    name = models.CharField("name", max_length=200)
    kind = models.CharField("kind", max_length=20, choices=Kind, default=Kind.PROJECT)
    provider = models.CharField(
        "provider", max_length=20, choices=Provider, default=Provider.OPENAI
    )
    base_url = models.URLField(
        "base URL",
        blank=True,
        help_text="For OpenAI-compatible providers, e.g. https://llm.example.com/v1.",
    )
    azure_endpoint = models.URLField(
        "Azure endpoint", blank=True, help_text="https://<resource>.openai.azure.com"
    )
    azure_api_version = models.CharField("Azure API version", max_length=32, blank=True)
    permissions = models.CharField(
        "permissions", max_length=16, choices=Permissions, default=Permissions.ALL
    )
    # Ciphertext only. Plaintext goes in through keys.services and comes out only
    # through keys.services.api_key_secret_for_call at the moment of use.
    secret = EncryptedSecretField("secret (encrypted)")
    hint = models.CharField("hint", max_length=40, help_text="Redacted, e.g. sk-proj-…abcd")
    fingerprint = models.CharField("fingerprint", max_length=64, editable=False)
    status = models.CharField("status", max_length=20, choices=Status, default=Status.ACTIVE)
    openai_key_id = models.CharField("OpenAI key id", max_length=64, blank=True)
    # False for a key the Admin API sync found upstream only ("known, secret not stored"):
    # listed with OpenAI's redacted value as its hint, never callable from here.
    secret_stored = models.BooleanField("secret stored", default=True)
    upstream_synced_at = models.DateTimeField("last seen upstream", null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name="created by",
    )
    last_used_at = models.DateTimeField("last used", null=True, blank=True)
    last_rotated_at = models.DateTimeField("last rotated", null=True, blank=True)
    expires_at = models.DateTimeField("expires", null=True, blank=True)
    revoked_at = models.DateTimeField("revoked", null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            # Per organization: a global constraint would tell the owner of one
            # organization whether another organization stores a given key.
            models.UniqueConstraint(
                fields=["organization", "fingerprint"],
                name="keys_apikey_unique_fingerprint_per_org",
                violation_error_message="This key is already stored in this organization.",
            ),
            models.CheckConstraint(
                condition=(
                    models.Q(kind="admin", project__isnull=True)
                    | (~models.Q(kind="admin") & models.Q(project__isnull=False))
                ),
                name="keys_apikey_admin_keys_have_no_project",
                violation_error_message=(
                    "Admin keys belong to the organization (no project); "
                    "project and service-account keys need a project."
                ),
            ),
            models.CheckConstraint(
                condition=~models.Q(secret="") | models.Q(secret_stored=False),
                name="keys_apikey_secret_present",
                violation_error_message="A key needs a secret.",
            ),
            # A key known only from OpenAI's listing has no value here: nothing to call with.
            models.CheckConstraint(
                condition=models.Q(secret_stored=True) | models.Q(secret=""),
                name="keys_apikey_unstored_has_no_secret",
                violation_error_message="A key whose secret is not stored has no ciphertext.",
            ),
        ]
        indexes = [
            models.Index(fields=["project", "status"], name="keys_apikey_project_status"),
        ]
        verbose_name = "API key"

    def __str__(self) -> str:
        return f"{self.name} ({self.hint})"

    @property
    def is_active(self) -> bool:
        return self.status == self.Status.ACTIVE

    @property
    def rotated_or_created_at(self):
        return self.last_rotated_at or self.created_at

    @property
    def is_simulator(self) -> bool:
        """True when the key points at the bundled OpenAI simulator (demo / tests)."""
        sim = settings.OPENAI_SIMULATOR_URL
        return bool(sim) and self.base_url.rstrip("/").startswith(sim.rstrip("/"))


class APIKeyEvent(AppendOnlyModel):
    """One step in a key's life (created, rotated, revoked, revealed, tested).

    Keeps the hint a key had before a rotation, so the page can show which value was
    in use when. Hints only: never a secret. Append-only like the audit log.
    """

    class Action(models.TextChoices):
        CREATED = "created", "Created"
        ROTATED = "rotated", "Rotated"
        REVOKED = "revoked", "Revoked"
        REVEALED = "revealed", "Revealed"
        TESTED = "tested", "Connection tested"

    api_key = models.ForeignKey(
        APIKey, on_delete=models.CASCADE, related_name="events", verbose_name="API key"
    )
    action = models.CharField("action", max_length=16, choices=Action)
    occurred_at = models.DateTimeField("when (UTC)")
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name="actor",
    )
    actor_label = models.CharField("actor name", max_length=150, blank=True)
    old_hint = models.CharField("previous hint", max_length=40, blank=True)
    new_hint = models.CharField("hint", max_length=40, blank=True)
    note = models.CharField("note", max_length=255, blank=True)

    changed_message = deleted_message = "Key history is append-only."

    class Meta:
        ordering = ["-occurred_at", "-id"]
        indexes = [
            models.Index(fields=["api_key", "-occurred_at"], name="keys_event_key_time"),
        ]
        verbose_name = "API key event"

    def __str__(self) -> str:
        return f"{self.occurred_at:%Y-%m-%d %H:%M} {self.action} {self.new_hint or self.old_hint}"


class RotationReminder(models.Model):
    """A rotation reminder stage reached for a key in one rotation cycle, written once
    with its notifications. The cycle is the moment the key was created or last rotated:
    rotating starts a new cycle, so its stages are sent again for the next due date."""

    class Stage(models.TextChoices):
        DAYS_14 = "14d", "14 days before"
        DAYS_7 = "7d", "7 days before"
        DAYS_1 = "1d", "1 day before"
        DUE = "due", "On the day"
        # Weekly while overdue: "overdue-1", "overdue-2", … (week numbers), so each is
        # its own row.

    api_key = models.ForeignKey(
        APIKey, verbose_name="key", on_delete=models.CASCADE, related_name="rotation_reminders"
    )
    cycle = models.CharField("rotation cycle", max_length=40)
    stage = models.CharField("stage", max_length=20)
    due_at = models.DateTimeField("due at")
    created_at = models.DateTimeField("sent at", auto_now_add=True)

    class Meta:
        verbose_name = "rotation reminder"
        ordering = ["-created_at", "-pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["api_key", "cycle", "stage"],
                name="keys_rotation_reminder_once",
                violation_error_message="This reminder was already sent for this cycle.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.api_key_id} {self.cycle} {self.stage}"
