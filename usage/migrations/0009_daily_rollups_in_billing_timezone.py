"""Daily rollups cut in each organization's billing timezone (``UsageDailyZone``): the
dashboard's ranges are local days, so a 30- or 90-day view reads whole daily rows instead
of UTC days corrected by the hourly rows of the hours they differ by (347 ms of SQL at 10M
records for New York, benchmarks/dashboard.py; docs/dashboard.md "Scale").

Every organization with usage gets its zone (its billing timezone, UTC when unset or
unknown) and its daily rows rebuilt in it from the hourly rollups by ``usage.daily``'s
rebuild (raw records for the hours a :30 zone's midnight splits). Organizations in UTC
keep their rows as they are: their local days are the UTC days.
"""

import django.db.models.deletion
from django.db import migrations, models
from django.utils import timezone


def cut_in_billing_timezones(apps, schema_editor):
    from usage.daily import rebuild_with, zone_named

    organizations = apps.get_model("orgs", "Organization")
    hourly = apps.get_model("usage", "UsageHourly")
    zones = apps.get_model("usage", "UsageDailyZone")
    with_usage = set(hourly.objects.values_list("organization_id", flat=True).distinct())
    now = timezone.now()
    for org_id, name in organizations.objects.filter(pk__in=with_usage).values_list(
        "pk", "billing_timezone"
    ):
        zone = zone_named(name)
        if zone.key == "UTC":
            zones.objects.create(organization_id=org_id, zone="UTC")
            continue
        rebuild_with(
            org_id,
            zone,
            daily=apps.get_model("usage", "UsageDaily"),
            hourly=hourly,
            records=apps.get_model("usage", "UsageRecord"),
            zones=zones,
            now=now,
        )


class Migration(migrations.Migration):
    dependencies = [
        ("orgs", "0006_upstream_links"),
        ("usage", "0008_usage_incomplete_counters"),
    ]

    operations = [
        migrations.CreateModel(
            name="UsageDailyZone",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("zone", models.CharField(max_length=64, verbose_name="timezone of the daily rollups")),
                ("rebuilt_at", models.DateTimeField(blank=True, null=True, verbose_name="last rebuilt")),
                (
                    "organization",
                    models.OneToOneField(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="usage_daily_zone",
                        to="orgs.organization",
                        verbose_name="organization",
                    ),
                ),
            ],
            options={
                "verbose_name": "daily rollup timezone",
                "verbose_name_plural": "daily rollup timezones",
            },
        ),
        migrations.AlterField(
            model_name="usagedaily",
            name="day",
            field=models.DateField(verbose_name="day (billing timezone)"),
        ),
        migrations.RunPython(cut_in_billing_timezones, migrations.RunPython.noop),
    ]
