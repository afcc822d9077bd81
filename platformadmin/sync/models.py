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
