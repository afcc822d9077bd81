"""What the console keeps of OpenAI's side: sync runs and their reports, the audit-log
cursor, and the daily usage and cost buckets OpenAI reports (its Costs figures are the
bill; the console's own usage records are what it saw)."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models

from orgs.models import Organization
from usage.fields import MoneyField


class SyncRun(models.Model):
    """One run of a pull or push, with its report (kept as history)."""

    class Kind(models.TextChoices):
        HIERARCHY = "hierarchy", "Projects, service accounts and keys"
        AUDIT_LOG = "audit_log", "Audit log"
        USAGE = "usage", "Usage and costs"

    class Status(models.TextChoices):
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        PARTIAL = "partial", "Finished with errors"
        FAILED = "failed", "Failed"

    public_id = models.UUIDField("public id", default=uuid.uuid4, unique=True, editable=False)
    organization = models.ForeignKey(
        Organization,
        verbose_name="organization",
        on_delete=models.CASCADE,
        related_name="sync_runs",
    )
    kind = models.CharField("kind", max_length=16, choices=Kind)
    status = models.CharField("status", max_length=16, choices=Status, default=Status.RUNNING)
    started_at = models.DateTimeField("started at")
    finished_at = models.DateTimeField("finished at", null=True, blank=True)
    triggered_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name="triggered by",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    # {"created": n, "updated": n, "deleted_upstream": n, "unchanged": n, "errors": [...],
    #  "details": [...]}; error texts are redacted.
    report = models.JSONField("report", default=dict, blank=True)

    class Meta:
        verbose_name = "sync run"
        ordering = ["-started_at", "-pk"]
        indexes = [
            models.Index(fields=["organization", "kind", "-started_at"], name="sync_run_recent"),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.started_at:%Y-%m-%d %H:%M} ({self.status})"


class SyncCursor(models.Model):
    """Where the next pull of a stream starts (e.g. the audit log's newest event seen)."""

    organization = models.ForeignKey(
        Organization, verbose_name="organization", on_delete=models.CASCADE, related_name="+"
    )
    stream = models.CharField("stream", max_length=32)
    position = models.CharField("position", max_length=200, blank=True)
    updated_at = models.DateTimeField("updated at", auto_now=True)

    class Meta:
        verbose_name = "sync cursor"
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "stream"], name="sync_cursor_one_per_stream"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.stream}: {self.position}"


class UpstreamUsageBucket(models.Model):
    """OpenAI's completions usage for one UTC day and group (project, API key, model)."""

    organization = models.ForeignKey(
        Organization, verbose_name="organization", on_delete=models.CASCADE, related_name="+"
    )
    day = models.DateField("day (UTC)")
    project_openai_id = models.CharField("OpenAI project id", max_length=64, blank=True)
    api_key_openai_id = models.CharField("OpenAI key id", max_length=64, blank=True)
    model = models.CharField("model", max_length=100, blank=True)
    requests = models.PositiveBigIntegerField("requests", default=0)
    input_tokens = models.PositiveBigIntegerField("input tokens", default=0)
    cached_input_tokens = models.PositiveBigIntegerField("cached input tokens", default=0)
    output_tokens = models.PositiveBigIntegerField("output tokens", default=0)
    pulled_at = models.DateTimeField("pulled at")

    class Meta:
        verbose_name = "OpenAI usage bucket"
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "day", "project_openai_id", "api_key_openai_id", "model"],
                name="sync_usage_bucket_once",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.day} {self.project_openai_id} {self.model}"


class UpstreamCostBucket(models.Model):
    """OpenAI's cost (the bill) for one UTC day, project and line item."""

    organization = models.ForeignKey(
        Organization, verbose_name="organization", on_delete=models.CASCADE, related_name="+"
    )
    day = models.DateField("day (UTC)")
    project_openai_id = models.CharField("OpenAI project id", max_length=64, blank=True)
    line_item = models.CharField("line item", max_length=200, blank=True)
    amount = MoneyField("amount (USD)")
    pulled_at = models.DateTimeField("pulled at")

    class Meta:
        verbose_name = "OpenAI cost bucket"
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "day", "project_openai_id", "line_item"],
                name="sync_cost_bucket_once",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.day} {self.project_openai_id} {self.line_item}: {self.amount}"


# --- Mirrors of what exists only upstream (never overwrite the console's own fields) ------


class UpstreamProjectUser(models.Model):
    """A user of an OpenAI project with their role there, as the last pull saw them."""

    project = models.ForeignKey(
        "orgs.Project", verbose_name="project", on_delete=models.CASCADE, related_name="+"
    )
    openai_user_id = models.CharField("OpenAI user id", max_length=64)
    email = models.EmailField("e-mail", blank=True)
    name = models.CharField("name", max_length=200, blank=True)
    role = models.CharField("role", max_length=32)
    added_at = models.DateTimeField("added at", null=True, blank=True)
    synced_at = models.DateTimeField("last seen upstream")
    deleted_upstream_at = models.DateTimeField("deleted upstream", null=True, blank=True)

    class Meta:
        verbose_name = "OpenAI project user"
        ordering = ["project_id", "email"]
        constraints = [
            models.UniqueConstraint(
                fields=["project", "openai_user_id"], name="sync_project_user_once"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.email or self.openai_user_id} ({self.role})"


class UpstreamRateLimit(models.Model):
    """A project's per-model rate limit at OpenAI (``project.rate_limit``)."""

    project = models.ForeignKey(
        "orgs.Project", verbose_name="project", on_delete=models.CASCADE, related_name="+"
    )
    openai_id = models.CharField("OpenAI id", max_length=100)
    model = models.CharField("model", max_length=100)
    max_requests_per_1_minute = models.PositiveBigIntegerField("RPM", null=True, blank=True)
    max_tokens_per_1_minute = models.PositiveBigIntegerField("TPM", null=True, blank=True)
    max_requests_per_1_day = models.PositiveBigIntegerField("RPD", null=True, blank=True)
    batch_1_day_max_input_tokens = models.PositiveBigIntegerField(
        "batch input tokens per day", null=True, blank=True
    )
    synced_at = models.DateTimeField("last seen upstream")

    class Meta:
        verbose_name = "OpenAI rate limit"
        ordering = ["project_id", "model"]
        constraints = [
            models.UniqueConstraint(fields=["project", "openai_id"], name="sync_rate_limit_once"),
        ]

    def __str__(self) -> str:
        return f"{self.model}: {self.max_requests_per_1_minute} RPM"


class UpstreamSpendLimit(models.Model):
    """OpenAI's monthly spend limit of the organization (``project`` empty) or a project."""

    organization = models.ForeignKey(
        Organization, verbose_name="organization", on_delete=models.CASCADE, related_name="+"
    )
    project = models.ForeignKey(
        "orgs.Project",
        verbose_name="project",
        on_delete=models.CASCADE,
        related_name="+",
        null=True,
        blank=True,
    )
    threshold_cents = models.PositiveBigIntegerField("limit (US cents)")
    enforcement_status = models.CharField("enforcement", max_length=32, blank=True)
    synced_at = models.DateTimeField("last seen upstream")

    class Meta:
        verbose_name = "OpenAI spend limit"
        constraints = [
            models.UniqueConstraint(
                fields=["organization"],
                condition=models.Q(project__isnull=True),
                name="sync_spend_limit_one_per_org",
            ),
            models.UniqueConstraint(
                fields=["project"],
                condition=models.Q(project__isnull=False),
                name="sync_spend_limit_one_per_project",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.threshold_cents / 100:.2f} USD a month"


class UpstreamSpendAlert(models.Model):
    """An OpenAI spend alert (e-mail only upstream) of the organization or a project."""

    organization = models.ForeignKey(
        Organization, verbose_name="organization", on_delete=models.CASCADE, related_name="+"
    )
    project = models.ForeignKey(
        "orgs.Project",
        verbose_name="project",
        on_delete=models.CASCADE,
        related_name="+",
        null=True,
        blank=True,
    )
    openai_id = models.CharField("OpenAI id", max_length=100)
    threshold_cents = models.PositiveBigIntegerField("threshold (US cents)")
    recipients = models.JSONField("recipients", default=list)
    synced_at = models.DateTimeField("last seen upstream")

    class Meta:
        verbose_name = "OpenAI spend alert"
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "openai_id"], name="sync_spend_alert_once"
            ),
        ]

    def __str__(self) -> str:
        return f"alert at {self.threshold_cents / 100:.2f} USD"


class KeyRotation(models.Model):
    """One automated rotation of a service-account key, step by step (as AWS Secrets
    Manager's pending / current / previous), so a crash at any step resumes without two
    current keys, none, or a second new key upstream."""

    class Step(models.TextChoices):
        STARTED = "started", "Started"
        CREATED = "created", "New key created upstream"
        STORED = "stored", "New key stored"
        VERIFIED = "verified", "New key verified"
        PROMOTED = "promoted", "New key is current; grace period"
        DONE = "done", "Old key deleted upstream"
        FAILED = "failed", "Failed"

    public_id = models.UUIDField("public id", default=uuid.uuid4, unique=True, editable=False)
    organization = models.ForeignKey(
        Organization, verbose_name="organization", on_delete=models.CASCADE, related_name="+"
    )
    project = models.ForeignKey(
        "orgs.Project", verbose_name="project", on_delete=models.CASCADE, related_name="+"
    )
    service_account = models.ForeignKey(
        "orgs.ServiceAccount",
        verbose_name="service account",
        on_delete=models.CASCADE,
        related_name="+",
    )
    previous_key = models.ForeignKey(
        "keys.APIKey",
        verbose_name="previous key",
        on_delete=models.PROTECT,
        related_name="+",
    )
    pending_key = models.ForeignKey(
        "keys.APIKey",
        verbose_name="new key",
        on_delete=models.PROTECT,
        related_name="+",
        null=True,
        blank=True,
    )
    # Set as soon as OpenAI answers the create, before anything else: a resumed run finds
    # the new key upstream by this id (or by the name below after a timeout) instead of
    # creating a second one.
    pending_openai_key_id = models.CharField("new key's OpenAI id", max_length=64, blank=True)
    pending_key_name = models.CharField("new key's name upstream", max_length=200)
    step = models.CharField("step", max_length=16, choices=Step, default=Step.STARTED)
    grace_until = models.DateTimeField("old key deleted after", null=True, blank=True)
    attempts = models.PositiveIntegerField("attempts", default=0)
    last_error = models.TextField("last error", blank=True)
    started_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name="started by",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    created_at = models.DateTimeField("started at", auto_now_add=True)
    updated_at = models.DateTimeField("updated at", auto_now=True)
    finished_at = models.DateTimeField("finished at", null=True, blank=True)

    class Meta:
        verbose_name = "key rotation"
        ordering = ["-created_at", "-pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["service_account"],
                condition=~models.Q(step__in=["done", "failed"]),
                name="sync_one_open_rotation_per_account",
                violation_error_message="A rotation of this service account is already running.",
            ),
        ]

    def __str__(self) -> str:
        return f"rotation of {self.service_account_id} ({self.step})"
