"""Seed the model catalog and list prices from usage/data/openai-models.json.

The JSON is a copy of the shared facts, committed with the project, so the console
never reads anything outside its own tree at run time.
"""

import json
from datetime import date
from decimal import Decimal
from pathlib import Path

from django.db import migrations

DATA = Path(__file__).resolve().parent.parent / "data" / "openai-models.json"
LIST_PRICES_FROM = date(2026, 6, 1)
PRIORITY = {"gpt-5.5": Decimal("2.5"), "gpt-5.4": Decimal("2")}


def _dec(value):
    return None if value is None else Decimal(str(value))


def seed(apps, schema_editor):
    CatalogModel = apps.get_model("usage", "CatalogModel")
    ModelPrice = apps.get_model("usage", "ModelPrice")
    facts = json.loads(DATA.read_text())
    for row in facts["models"]:
        family = next((k for k in PRIORITY if row["id"].startswith(k)), None)
        model, _ = CatalogModel.objects.update_or_create(
            model_id=row["id"],
            defaults={
                "category": row["category"],
                "supports_reasoning": row["reasoning"],
                "priority_multiplier": PRIORITY.get(family) if family else None,
            },
        )
        ModelPrice.objects.update_or_create(
            model=model,
            organization=None,
            effective_from=LIST_PRICES_FROM,
            defaults={
                "input_per_mtok": _dec(row["input"]),
                "cached_input_per_mtok": _dec(row["cached_input"]),
                "output_per_mtok": _dec(row["output"]),
            },
        )


def unseed(apps, schema_editor):
    apps.get_model("usage", "ModelPrice").objects.filter(
        organization=None, effective_from=LIST_PRICES_FROM
    ).delete()


class Migration(migrations.Migration):
    dependencies = [("usage", "0001_initial")]

    operations = [migrations.RunPython(seed, unseed)]
