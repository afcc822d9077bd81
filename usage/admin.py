"""Django admin for the model catalog and prices."""

from __future__ import annotations

from django.contrib import admin

from platformadmin.templatetags.console_format import format_count, format_money

from .models import CatalogModel, IngestionToken, ModelPrice, UsageHourly, UsageRecord


class ModelPriceInline(admin.TabularInline):
    model = ModelPrice
    extra = 0
    fields = [
        "effective_from",
        "organization",
        "input_per_mtok",
        "cached_input_per_mtok",
        "output_per_mtok",
    ]


@admin.register(CatalogModel)
class CatalogModelAdmin(admin.ModelAdmin):
    list_display = [
        "model_id",
        "category",
        "supports_reasoning",
        "priority_multiplier",
        "is_active",
    ]
    list_filter = ["category", "supports_reasoning", "is_active"]
    search_fields = ["model_id"]
    inlines = [ModelPriceInline]


@admin.register(ModelPrice)
class ModelPriceAdmin(admin.ModelAdmin):
    list_display = [
        "model",
        "organization",
        "effective_from",
        "input_per_mtok",
        "cached_input_per_mtok",
        "output_per_mtok",
    ]
    list_filter = ["organization", "model__category"]
    search_fields = ["model__model_id", "organization__name"]
    date_hierarchy = "effective_from"


@admin.register(UsageRecord)
class UsageRecordAdmin(admin.ModelAdmin):
    """Raw records: editable by superusers for repairs; run check_rollups afterwards."""

    list_display = ["occurred_at", "project", "model", "source", "status", "tokens", "cost_usd"]
    list_filter = ["source", "status", "model"]
    search_fields = ["response_id", "server_request_id", "client_request_id", "model"]
    date_hierarchy = "occurred_at"
    raw_id_fields = ["organization", "project", "api_key"]
    readonly_fields = ["write_batch", "created_at"]

    @admin.display(description="total tokens", ordering="total_tokens")
    def tokens(self, obj: UsageRecord) -> str:
        return format_count(obj.total_tokens)

    @admin.display(description="cost", ordering="cost")
    def cost_usd(self, obj: UsageRecord) -> str:
        return "unpriced" if obj.cost is None else format_money(obj.cost)


@admin.register(UsageHourly)
class UsageHourlyAdmin(admin.ModelAdmin):
    list_display = [
        "hour",
        "project",
        "key_slot",
        "model",
        "requests",
        "errors",
        "cost_usd",
        "unpriced_requests",
    ]
    list_filter = ["model"]
    date_hierarchy = "hour"
    raw_id_fields = ["organization", "project"]

    @admin.display(description="cost of priced records", ordering="cost")
    def cost_usd(self, obj: UsageHourly) -> str:
        return format_money(obj.cost)


@admin.register(IngestionToken)
class IngestionTokenAdmin(admin.ModelAdmin):
    """Only the prefix is shown; the token itself is never stored."""

    list_display = ["name", "project", "prefix", "created_at", "last_used_at", "revoked_at"]
    search_fields = ["name", "prefix"]
    exclude = ["digest"]
    readonly_fields = ["prefix", "last_used_at", "created_by", "revoked_by"]
    raw_id_fields = ["project"]

    def has_add_permission(self, request) -> bool:
        return False  # created on the project's page, where it is shown once
