"""The model catalog and its dated prices.

Usage records, rollups and budgets are added next to these.
"""

from __future__ import annotations

import uuid
from decimal import Decimal

from django.conf import settings
from django.db import models

from orgs.models import Organization, TimestampedModel

from .fields import MoneyField


class CatalogModel(TimestampedModel):
    """A model the console knows: category (the model-tier table) and reasoning support."""

    class Category(models.TextChoices):
        FRONTIER_REASONING = "frontier_reasoning", "Frontier reasoning"
        REASONING_COST_EFFECTIVE = "reasoning_cost_effective", "Cost-effective reasoning"
        PREVIOUS_REASONING = "previous_reasoning", "Previous reasoning"
        NON_REASONING_FAST = "non_reasoning_fast", "Fast, non-reasoning"
        MULTIMODAL = "multimodal", "Multimodal"
        AUDIO = "audio", "Audio"
        EMBEDDINGS = "embeddings", "Embeddings"
        REALTIME = "realtime", "Realtime"
        OTHER = "other", "Other"

    model_id = models.CharField("model id", max_length=100, unique=True)
    category = models.CharField("category", max_length=32, choices=Category, default=Category.OTHER)
    supports_reasoning = models.BooleanField("supports reasoning", default=False)
    priority_multiplier = models.DecimalField(
        "priority tier multiplier",
        max_digits=5,
        decimal_places=2,
        null=True,
        blank=True,
        help_text="Price factor of the priority service tier; empty: no priority price known.",
    )
    is_active = models.BooleanField("active", default=True)

    class Meta:
        ordering = ["model_id"]
        verbose_name = "catalog model"

    def __str__(self) -> str:
        return self.model_id


class ModelPrice(TimestampedModel):
    """Prices per 1M tokens (USD) from a date on; per organization for negotiated rates.

    A null price means unknown: the model is *unpriced*, never silently free.

    Prices (and ``CatalogModel.priority_multiplier``) stay ``DecimalField`` although
    SQLite keeps them as REAL: they are only ever read one value at a time and
    multiplied in Python, never summed or multiplied in SQL, and Django reads a REAL
    back through 15 significant digits quantized to the field's places, so any value
    of at most 15 digits (these have 12 and 5) comes back exactly as written.
    """

    model = models.ForeignKey(
        CatalogModel, on_delete=models.CASCADE, related_name="prices", verbose_name="model"
    )
    organization = models.ForeignKey(
        Organization,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="model_prices",
        verbose_name="organization",
        help_text="Set for a negotiated rate; empty for list price.",
    )
    effective_from = models.DateField("effective from")
    input_per_mtok = models.DecimalField(
        "input / 1M tokens", max_digits=12, decimal_places=6, null=True, blank=True
    )
    cached_input_per_mtok = models.DecimalField(
        "cached input / 1M tokens", max_digits=12, decimal_places=6, null=True, blank=True
    )
    output_per_mtok = models.DecimalField(
        "output / 1M tokens", max_digits=12, decimal_places=6, null=True, blank=True
    )

    class Meta:
        ordering = ["model__model_id", "-effective_from"]
        constraints = [
            models.UniqueConstraint(
                fields=["model", "effective_from"],
                condition=models.Q(organization__isnull=True),
                name="usage_modelprice_unique_list_price_date",
                violation_error_message="This model already has a list price from that date.",
            ),
            models.UniqueConstraint(
                fields=["model", "organization", "effective_from"],
                condition=models.Q(organization__isnull=False),
                name="usage_modelprice_unique_org_price_date",
                violation_error_message="This organization already has a price for this model from that date.",
            ),
            models.CheckConstraint(
                condition=(
                    (models.Q(input_per_mtok__isnull=True) | models.Q(input_per_mtok__gte=0))
                    & (
                        models.Q(cached_input_per_mtok__isnull=True)
                        | models.Q(cached_input_per_mtok__gte=0)
                    )
                    & (models.Q(output_per_mtok__isnull=True) | models.Q(output_per_mtok__gte=0))
                ),
                name="usage_modelprice_non_negative",
                violation_error_message="Prices cannot be negative.",
            ),
        ]
        verbose_name = "model price"

    def __str__(self) -> str:
        who = f" for {self.organization}" if self.organization_id else ""
        return f"{self.model} from {self.effective_from}{who}"


class UsageRecord(models.Model):
    """One model response (or one failed call): tokens, cost, ids, timing.

    Unique on ``(project, response_id)`` when there is a response id, so a replay of the
    same response is a no-op (``INSERT ... ON CONFLICT DO NOTHING``). ``cost`` is NULL
    when the model has no price for this call: *unpriced*, never silently $0.
    """

    class Source(models.TextChoices):
        PLAYGROUND = "playground", "Playground"
        INGEST = "ingest", "Ingestion API"
        SYNC = "sync", "Admin API sync"

    organization = models.ForeignKey(
        Organization,
        on_delete=models.CASCADE,
        related_name="usage_records",
        verbose_name="organization",
    )
    project = models.ForeignKey(
        "orgs.Project",
        on_delete=models.CASCADE,
        related_name="usage_records",
        verbose_name="project",
    )
    # Spend history outlives a deleted key: the record stays, the link goes. No index of
    # its own: usage_rec_key_time (api_key, occurred_at, id) serves the foreign key too.
    api_key = models.ForeignKey(
        "keys.APIKey",
        on_delete=models.SET_NULL,
        db_index=False,
        null=True,
        blank=True,
        related_name="usage_records",
        verbose_name="API key",
    )
    source = models.CharField("source", max_length=16, choices=Source)
    model = models.CharField("model", max_length=100)
    # NULL, not "": errors have no response id and must not collide on the unique key.
    response_id = models.CharField("response id", max_length=200, null=True, blank=True)  # noqa: DJ001
    server_request_id = models.CharField(
        "server request id (x-request-id)", max_length=200, blank=True
    )
    client_request_id = models.CharField(
        "client request id (X-Client-Request-Id)", max_length=200, blank=True
    )
    input_tokens = models.PositiveBigIntegerField("input tokens", default=0)
    cached_input_tokens = models.PositiveBigIntegerField("cached input tokens", default=0)
    output_tokens = models.PositiveBigIntegerField("output tokens", default=0)
    reasoning_tokens = models.PositiveBigIntegerField("reasoning tokens", default=0)
    total_tokens = models.PositiveBigIntegerField("total tokens", default=0)
    # Integer units of 1e-10 USD in the database (exact on SQLite too), Decimal here.
    cost = MoneyField(
        "cost (USD)",
        null=True,
        blank=True,
        help_text="Empty: unpriced (no price known for this model, date and tier).",
    )
    service_tier = models.CharField("service tier", max_length=32, blank=True)
    latency_ms = models.PositiveIntegerField("latency (ms)", null=True, blank=True)
    status = models.CharField("status", max_length=32, default="completed")
    error_type = models.CharField("error type", max_length=100, blank=True)
    ratelimit_headers = models.JSONField("x-ratelimit-* headers", default=dict, blank=True)
    retries = models.PositiveSmallIntegerField("retries", default=0)
    occurred_at = models.DateTimeField("occurred at")
    # The write (one API request or one playground call) that inserted this row, so a
    # batch can be traced and, if need be, removed as a whole.
    write_batch = models.UUIDField("write batch", editable=False)
    created_at = models.DateTimeField("recorded at", auto_now_add=True)

    class Meta:
        ordering = ["-occurred_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["project", "response_id"],
                condition=models.Q(response_id__isnull=False),
                name="usage_record_unique_response_per_project",
                violation_error_message="This response is already recorded for this project.",
            ),
            models.CheckConstraint(
                condition=models.Q(cost__isnull=True) | models.Q(cost__gte=0),
                name="usage_record_cost_non_negative",
                violation_error_message="A cost cannot be negative.",
            ),
        ]
        indexes = [
            models.Index(fields=["project", "occurred_at"], name="usage_rec_project_time"),
            models.Index(fields=["organization", "occurred_at"], name="usage_rec_org_time"),
            models.Index(fields=["occurred_at"], name="usage_rec_time"),
            # The request log (usage/request_log.py): a key filter in the log's order, and
            # exact searches on the request ids (empty ids, most client ids, not indexed).
            models.Index(fields=["api_key", "occurred_at", "id"], name="usage_rec_key_time"),
            models.Index(
                fields=["server_request_id"],
                name="usage_rec_server_req",
                condition=~models.Q(server_request_id=""),
            ),
            models.Index(
                fields=["client_request_id"],
                name="usage_rec_client_req",
                condition=~models.Q(client_request_id=""),
            ),
        ]
        verbose_name = "usage record"

    def __str__(self) -> str:
        return f"{self.model} {self.response_id or self.status} ({self.project_id})"

    @property
    def is_unpriced(self) -> bool:
        return self.cost is None


class RollupBucket(models.Model):
    """A rollup bucket's key columns after the project, and its counters: the columns of
    ``usage.rollup.COUNTERS``, the same in every grain's table (``UsageHourly``,
    ``UsageDaily``), declared once."""

    key_slot = models.BigIntegerField("API key id (0 = none)", default=0)
    model = models.CharField("model", max_length=100)
    requests = models.PositiveBigIntegerField("requests", default=0)
    errors = models.PositiveBigIntegerField("errors", default=0)
    input_tokens = models.PositiveBigIntegerField("input tokens", default=0)
    cached_input_tokens = models.PositiveBigIntegerField("cached input tokens", default=0)
    output_tokens = models.PositiveBigIntegerField("output tokens", default=0)
    reasoning_tokens = models.PositiveBigIntegerField("reasoning tokens", default=0)
    total_tokens = models.PositiveBigIntegerField("total tokens", default=0)
    # Added to by the database (cost = cost + excluded.cost): exact only as integers.
    cost = MoneyField("cost of priced records (USD)", default=Decimal(0))
    unpriced_requests = models.PositiveBigIntegerField("unpriced records", default=0)
    # db_default too: the column came later (0008), and SQL writing the older columns
    # (0007's fill) leaves it 0.
    incomplete = models.PositiveBigIntegerField("incomplete calls", default=0, db_default=0)
    incomplete_errors = models.PositiveBigIntegerField(
        "incomplete calls counted as errors", default=0, db_default=0
    )

    class Meta:
        abstract = True


class UsageHourly(RollupBucket):
    """Usage per hour (UTC) × project × key × model, kept in step with the records.

    Updated in the same transaction as the records it counts, by an UPSERT that adds
    only the rows actually inserted. ``key_slot`` is the API key id or 0 (no key): a
    non-null column so the unique constraint (and ON CONFLICT) treats "no key" as one key.
    """

    hour = models.DateTimeField("hour (UTC)")
    organization = models.ForeignKey(
        Organization,
        on_delete=models.CASCADE,
        related_name="usage_hourly",
        verbose_name="organization",
        # The (organization, hour) index below serves every lookup by organization; a
        # second one on the organization alone led PostgreSQL's planner to scan all of an
        # organization's rows and filter the range (20 ms against 9 for 30 days at 10M).
        db_index=False,
    )
    project = models.ForeignKey(
        "orgs.Project",
        on_delete=models.CASCADE,
        related_name="usage_hourly",
        verbose_name="project",
    )

    class Meta:
        ordering = ["-hour", "model"]
        constraints = [
            models.UniqueConstraint(
                fields=["project", "key_slot", "model", "hour"],
                name="usage_hourly_unique_bucket",
                violation_error_message="This hour, project, key and model already have a rollup.",
            ),
        ]
        indexes = [
            models.Index(fields=["organization", "hour"], name="usage_hourly_org_hour"),
            models.Index(fields=["hour"], name="usage_hourly_hour"),
        ]
        verbose_name = "hourly usage rollup"
        verbose_name_plural = "hourly usage rollups"

    def __str__(self) -> str:
        return f"{self.hour:%Y-%m-%d %H}:00 {self.model} ({self.project_id}/{self.key_slot})"


class UsageDaily(RollupBucket):
    """Usage per local day × project × key × model: the counters of a calendar day in the
    organization's daily-rollup timezone (``UsageDailyZone``: its billing timezone), so a
    30- or 90-day view of the dashboard reads one row per day, key and model, and its
    days (and months) are whole rows, with no hour to add or take away.

    Written by the same rule, in the same statement, as ``UsageHourly`` (``usage.rollup``
    ``GRAINS``); rebuilt from the hourly rollups when the billing timezone changes
    (``usage.daily.daily_rollups_rebuild``).
    """

    day = models.DateField("day (billing timezone)")
    organization = models.ForeignKey(
        Organization,
        on_delete=models.CASCADE,
        related_name="usage_daily",
        verbose_name="organization",
        # The (organization, day) index below serves every lookup by organization; a
        # second one on the organization alone led PostgreSQL's planner to scan all of an
        # organization's rows and filter the range (20 ms against 9 for 30 days at 10M).
        db_index=False,
    )
    project = models.ForeignKey(
        "orgs.Project",
        on_delete=models.CASCADE,
        related_name="usage_daily",
        verbose_name="project",
    )

    class Meta:
        ordering = ["-day", "model"]
        constraints = [
            models.UniqueConstraint(
                fields=["project", "key_slot", "model", "day"],
                name="usage_daily_unique_bucket",
                violation_error_message="This day, project, key and model already have a rollup.",
            ),
        ]
        indexes = [
            models.Index(fields=["organization", "day"], name="usage_daily_org_day"),
            models.Index(fields=["day"], name="usage_daily_day"),
        ]
        verbose_name = "daily usage rollup"
        verbose_name_plural = "daily usage rollups"

    def __str__(self) -> str:
        return f"{self.day:%Y-%m-%d} {self.model} ({self.project_id}/{self.key_slot})"


class UsageDailyZone(models.Model):
    """The timezone an organization's ``UsageDaily`` days are cut in: its billing timezone
    when the first usage was written, and again after every change (the rebuild replaces
    every daily row of the organization and this zone in one transaction).

    Writers read it ``FOR SHARE`` in their transaction and the rebuild locks it ``FOR
    UPDATE``, so no batch can write daily rows cut in a zone a concurrent rebuild is
    replacing; readers use the daily rows only when this zone is the one they group by.
    """

    organization = models.OneToOneField(
        Organization,
        on_delete=models.CASCADE,
        related_name="usage_daily_zone",
        verbose_name="organization",
    )
    zone = models.CharField("timezone of the daily rollups", max_length=64)
    rebuilt_at = models.DateTimeField("last rebuilt", null=True, blank=True)

    class Meta:
        verbose_name = "daily rollup timezone"
        verbose_name_plural = "daily rollup timezones"

    def __str__(self) -> str:
        return f"{self.organization_id}: {self.zone}"


# The table of each rollup grain (``usage.rollup.GRAINS``, by name).
ROLLUP_MODELS: dict[str, type[models.Model]] = {"hour": UsageHourly, "day": UsageDaily}


class IngestionToken(TimestampedModel):
    """A per-project bearer token for ``POST /api/v1/usage``.

    Stored as a public prefix (for lookup) and an HMAC of the whole token; the token
    itself is shown once at creation and never stored.
    """

    public_id = models.UUIDField("public id", default=uuid.uuid4, unique=True, editable=False)
    project = models.ForeignKey(
        "orgs.Project",
        on_delete=models.CASCADE,
        related_name="ingestion_tokens",
        verbose_name="project",
    )
    name = models.CharField("name", max_length=100)
    prefix = models.CharField("prefix", max_length=32, unique=True, editable=False)
    digest = models.CharField("HMAC-SHA256", max_length=64, editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name="created by",
    )
    last_used_at = models.DateTimeField("last used", null=True, blank=True)
    revoked_at = models.DateTimeField("revoked at", null=True, blank=True)
    revoked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name="revoked by",
    )

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "ingestion token"

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None


# --- Budgets ---------------------------------------------------------------------------


def default_thresholds() -> list[int]:
    return [50, 80, 100]


class Budget(TimestampedModel):
    """A monthly amount in USD for an organization (``project`` empty) or one project.

    Periods are calendar months in the organization's billing timezone. ``thresholds`` are
    percentages of the amount, each alerted once per period; with ``hard_limit`` the
    console refuses its own calls that could take the period's spend past the amount.
    """

    public_id = models.UUIDField("public id", default=uuid.uuid4, unique=True, editable=False)
    organization = models.ForeignKey(
        Organization, verbose_name="organization", on_delete=models.CASCADE, related_name="budgets"
    )
    project = models.ForeignKey(
        "orgs.Project",
        verbose_name="project",
        on_delete=models.CASCADE,
        related_name="budgets",
        null=True,
        blank=True,
        help_text="Empty: the whole organization.",
    )
    amount = MoneyField("monthly amount (USD)")
    thresholds = models.JSONField(
        "alert thresholds (%)",
        default=default_thresholds,
        help_text="Percentages of the amount, each alerted once a month.",
    )
    hard_limit = models.BooleanField(
        "hard limit",
        default=False,
        help_text="Refuse the console's own calls that could take the month past the amount.",
    )
    forecast_alert = models.BooleanField(
        "forecast alert",
        default=True,
        help_text="Alert once a month when the month-end projection passes the amount.",
    )
    is_active = models.BooleanField("active", default=True)
    last_evaluated_at = models.DateTimeField("last evaluated", null=True, blank=True)

    class Meta:
        verbose_name = "budget"
        ordering = ["organization_id", "project_id"]
        constraints = [
            models.UniqueConstraint(
                fields=["organization"],
                condition=models.Q(project__isnull=True),
                name="usage_budget_one_per_organization",
                violation_error_message="This organization already has a budget.",
            ),
            models.UniqueConstraint(
                fields=["project"],
                condition=models.Q(project__isnull=False),
                name="usage_budget_one_per_project",
                violation_error_message="This project already has a budget.",
            ),
            models.CheckConstraint(
                condition=models.Q(amount__gt=0),
                name="usage_budget_amount_positive",
                violation_error_message="The monthly amount must be more than $0.",
            ),
        ]

    def __str__(self) -> str:
        scope = self.project.name if self.project_id else self.organization.name
        return f"Budget of {scope}"


class BudgetAlert(models.Model):
    """A threshold (or the forecast) crossed in one period: written once, with the
    notifications it caused, in one transaction."""

    class Kind(models.TextChoices):
        THRESHOLD = "threshold", "Threshold"
        FORECAST = "forecast", "Forecast"

    budget = models.ForeignKey(
        Budget, verbose_name="budget", on_delete=models.CASCADE, related_name="alerts"
    )
    period = models.CharField("period (YYYY-MM)", max_length=7)
    kind = models.CharField("kind", max_length=16, choices=Kind, default=Kind.THRESHOLD)
    threshold = models.PositiveIntegerField("threshold (%)", default=0)
    spend = MoneyField("spend when crossed")
    projected = MoneyField("projected month-end spend", null=True, blank=True)
    unpriced_requests = models.PositiveBigIntegerField("unpriced calls", default=0)
    created_at = models.DateTimeField("crossed at", auto_now_add=True)

    class Meta:
        verbose_name = "budget alert"
        ordering = ["-created_at", "-pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["budget", "period", "kind", "threshold"],
                name="usage_budget_alert_once",
                violation_error_message="This alert was already raised for this period.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.budget_id} {self.period} {self.kind} {self.threshold}%"


class BudgetReservation(models.Model):
    """The worst-case cost of a console call in flight, held against a hard limit until
    the call's recorded cost settles it (or it expires, if the process died)."""

    public_id = models.UUIDField("public id", default=uuid.uuid4, unique=True, editable=False)
    budget = models.ForeignKey(
        Budget, verbose_name="budget", on_delete=models.CASCADE, related_name="reservations"
    )
    period = models.CharField("period (YYYY-MM)", max_length=7)
    amount = MoneyField("reserved (USD)")
    created_at = models.DateTimeField("reserved at", auto_now_add=True)
    expires_at = models.DateTimeField("expires at")
    settled_at = models.DateTimeField("settled at", null=True, blank=True)

    class Meta:
        verbose_name = "budget reservation"
        ordering = ["-created_at"]
        indexes = [
            models.Index(
                fields=["budget", "expires_at"],
                name="usage_reservation_open",
                condition=models.Q(settled_at__isnull=True),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.amount} on {self.budget_id}"
