"""Costs as integer units of 1e-10 USD (``usage.fields.MoneyField``), on every database.

SQLite stored the old DecimalField columns as REAL, so sums drifted; PostgreSQL had
exact numerics. Each table gets a new BIGINT column, filled in one UPDATE per table
from the old one (exact on PostgreSQL; on SQLite the nearest unit of the REAL, which
also removes the drift a rollup had accumulated below half a unit), then the old column
goes and the new one takes its name. Reversible: the way back divides by the same unit.
"""

from __future__ import annotations

from decimal import Decimal

from django.db import migrations, models

import usage.fields

# Frozen here (not read from usage.fields): this migration moved data to exactly this unit.
UNITS = 10**10
TABLES = [("usagerecord", "cost IS NOT NULL"), ("usagehourly", "1 = 1")]


def _run(apps, schema_editor, template: str) -> None:
    qn = schema_editor.quote_name
    for model_name, where in TABLES:
        table = qn(apps.get_model("usage", model_name)._meta.db_table)
        # CAST(ROUND(x) AS BIGINT) means the same on PostgreSQL (numeric, exact) and
        # SQLite (REAL rounded to the nearest integer; BIGINT gives INTEGER affinity).
        schema_editor.execute(template.format(table=table, where=where, units=UNITS))


def to_units(apps, schema_editor) -> None:
    _run(apps, schema_editor,
         "UPDATE {table} SET cost_units = CAST(ROUND(cost * {units}) AS BIGINT) WHERE {where}")


def to_decimal(apps, schema_editor) -> None:
    _run(apps, schema_editor,
         "UPDATE {table} SET cost = cost_units / {units}.0 WHERE cost_units IS NOT NULL")


class Migration(migrations.Migration):

    dependencies = [
        ("usage", "0003_usage_records"),
    ]

    operations = [
        migrations.RemoveConstraint(model_name="usagerecord", name="usage_record_cost_non_negative"),
        migrations.AddField(
            model_name="usagerecord",
            name="cost_units",
            field=usage.fields.MoneyField(
                blank=True, null=True, verbose_name="cost (USD)",
                help_text="Empty: unpriced (no price known for this model, date and tier).",
            ),
        ),
        migrations.AddField(
            model_name="usagehourly",
            name="cost_units",
            field=usage.fields.MoneyField(default=Decimal("0"), verbose_name="cost of priced records (USD)"),
        ),
        migrations.RunPython(to_units, to_decimal),
        migrations.RemoveField(model_name="usagerecord", name="cost"),
        migrations.RemoveField(model_name="usagehourly", name="cost"),
        migrations.RenameField(model_name="usagerecord", old_name="cost_units", new_name="cost"),
        migrations.RenameField(model_name="usagehourly", old_name="cost_units", new_name="cost"),
        migrations.AddConstraint(
            model_name="usagerecord",
            constraint=models.CheckConstraint(
                condition=models.Q(cost__isnull=True) | models.Q(cost__gte=0),
                name="usage_record_cost_non_negative",
                violation_error_message="A cost cannot be negative.",
            ),
        ),
    ]
