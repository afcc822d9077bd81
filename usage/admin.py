"""Django admin for the model catalog and prices."""

from __future__ import annotations

from django.contrib import admin

from .models import CatalogModel, ModelPrice


class ModelPriceInline(admin.TabularInline):
    model = ModelPrice
    extra = 0
    fields = ["effective_from", "organization", "input_per_mtok", "cached_input_per_mtok", "output_per_mtok"]


@admin.register(CatalogModel)
class CatalogModelAdmin(admin.ModelAdmin):
    list_display = ["model_id", "category", "supports_reasoning", "priority_multiplier", "is_active"]
    list_filter = ["category", "supports_reasoning", "is_active"]
    search_fields = ["model_id"]
    inlines = [ModelPriceInline]


@admin.register(ModelPrice)
class ModelPriceAdmin(admin.ModelAdmin):
    list_display = [
        "model", "organization", "effective_from", "input_per_mtok",
        "cached_input_per_mtok", "output_per_mtok",
    ]
    list_filter = ["organization", "model__category"]
    search_fields = ["model__model_id", "organization__name"]
    date_hierarchy = "effective_from"
