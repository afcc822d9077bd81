"""The model catalog and its dated prices.

Usage records, rollups and budgets are added next to these.
"""

from __future__ import annotations

from django.db import models

from orgs.models import Organization, TimestampedModel


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
        "priority tier multiplier", max_digits=5, decimal_places=2, null=True, blank=True,
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
    """

    model = models.ForeignKey(
        CatalogModel, on_delete=models.CASCADE, related_name="prices", verbose_name="model"
    )
    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, null=True, blank=True, related_name="model_prices",
        verbose_name="organization", help_text="Set for a negotiated rate; empty for list price.",
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
                    & (models.Q(cached_input_per_mtok__isnull=True) | models.Q(cached_input_per_mtok__gte=0))
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
