"""Daily rollups (UsageDaily): the hourly buckets a UTC day at a time, so the dashboard's
30- and 90-day views read ~24 times fewer rows (benchmarks/dashboard.py, docs/dashboard.md
"Scale"). Filled from the existing hourly rollups in one INSERT ... SELECT: a day's
counters are the exact (integer) sums of its hours by the one rollup rule, and the hourly
rollups are kept for hours whose raw records the retention purge already deleted.
"""

from decimal import Decimal

import django.db.models.deletion
from django.db import migrations, models

import usage.fields

COUNTERS = (
    "requests, errors, input_tokens, cached_input_tokens, output_tokens, reasoning_tokens, "
    "total_tokens, cost, unpriced_requests"
)


def fill_from_hourly(apps, schema_editor):
    connection = schema_editor.connection
    day = "(hour AT TIME ZONE 'UTC')::date" if connection.vendor == "postgresql" else "date(hour)"
    sums = ", ".join(f"sum({c.strip()})" for c in COUNTERS.split(","))
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO usage_usagedaily (day, organization_id, project_id, key_slot, model,"
            f" {COUNTERS}) SELECT {day}, organization_id, project_id, key_slot, model, {sums}"
            " FROM usage_usagehourly GROUP BY 1, 2, 3, 4, 5"
        )


class Migration(migrations.Migration):
    dependencies = [
        ("orgs", "0005_output_cap_help_text"),
        ("usage", "0006_request_log_index"),
    ]

    operations = [
        migrations.CreateModel(
            name="UsageDaily",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("day", models.DateField(verbose_name="day (UTC)")),
                (
                    "key_slot",
                    models.BigIntegerField(default=0, verbose_name="API key id (0 = none)"),
                ),
                ("model", models.CharField(max_length=100, verbose_name="model")),
                ("requests", models.PositiveBigIntegerField(default=0, verbose_name="requests")),
                ("errors", models.PositiveBigIntegerField(default=0, verbose_name="errors")),
                (
                    "input_tokens",
                    models.PositiveBigIntegerField(default=0, verbose_name="input tokens"),
                ),
                (
                    "cached_input_tokens",
                    models.PositiveBigIntegerField(default=0, verbose_name="cached input tokens"),
                ),
                (
                    "output_tokens",
                    models.PositiveBigIntegerField(default=0, verbose_name="output tokens"),
                ),
                (
                    "reasoning_tokens",
                    models.PositiveBigIntegerField(default=0, verbose_name="reasoning tokens"),
                ),
                (
                    "total_tokens",
                    models.PositiveBigIntegerField(default=0, verbose_name="total tokens"),
                ),
                (
                    "cost",
                    usage.fields.MoneyField(
                        default=Decimal("0"), verbose_name="cost of priced records (USD)"
                    ),
                ),
                (
                    "unpriced_requests",
                    models.PositiveBigIntegerField(default=0, verbose_name="unpriced records"),
                ),
                (
                    "organization",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="usage_daily",
                        to="orgs.organization",
                        verbose_name="organization",
                    ),
                ),
                (
                    "project",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="usage_daily",
                        to="orgs.project",
                        verbose_name="project",
                    ),
                ),
            ],
            options={
                "verbose_name": "daily usage rollup",
                "verbose_name_plural": "daily usage rollups",
                "ordering": ["-day", "model"],
                "indexes": [
                    models.Index(fields=["organization", "day"], name="usage_daily_org_day"),
                    models.Index(fields=["day"], name="usage_daily_day"),
                ],
                "constraints": [
                    models.UniqueConstraint(
                        fields=("project", "key_slot", "model", "day"),
                        name="usage_daily_unique_bucket",
                        violation_error_message=(
                            "This day, project, key and model already have a rollup."
                        ),
                    )
                ],
            },
        ),
        migrations.RunPython(fill_from_hourly, migrations.RunPython.noop),
    ]
