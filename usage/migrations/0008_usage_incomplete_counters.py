"""Incomplete calls in the rollups (``incomplete``, ``incomplete_errors``): the dashboard
showed them apart by reading the raw records of the whole range (0.47 s at 1M records,
benchmarks/dashboard.py); now they are two more counters of the one rule.

Filled from the raw records still kept (hourly), then the daily rollups from the hourly
ones; hours whose raw records the retention purge already deleted keep 0.
"""

from django.db import migrations, models

# Both databases: the rule's conditions (usage.rollup.IS_INCOMPLETE, IS_INCOMPLETE_ERROR)
# as of this migration, written out so the migration does not change with the rule.
COUNT_PORTABLE = (
    "sum(CASE WHEN status = 'incomplete' THEN 1 ELSE 0 END)",
    "sum(CASE WHEN status = 'incomplete' AND (error_type <> ''"
    " OR status IN ('error', 'failed')) THEN 1 ELSE 0 END)",
)


def fill(apps, schema_editor):
    connection = schema_editor.connection
    if connection.vendor == "postgresql":
        hour = "date_trunc('hour', occurred_at, 'UTC')"
        day = "(h.hour AT TIME ZONE 'UTC')::date"
    else:
        hour = "strftime('%Y-%m-%d %H:00:00', occurred_at)"
        day = "date(h.hour)"
    n, n_err = COUNT_PORTABLE
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE usage_usagehourly SET incomplete = r.n, incomplete_errors = r.n_err"
            f" FROM (SELECT {hour} AS hour, project_id, COALESCE(api_key_id, 0) AS key_slot,"
            f" model, {n} AS n, {n_err} AS n_err FROM usage_usagerecord"
            " WHERE status = 'incomplete' GROUP BY 1, 2, 3, 4) AS r"
            " WHERE usage_usagehourly.hour = r.hour AND usage_usagehourly.project_id = r.project_id"
            " AND usage_usagehourly.key_slot = r.key_slot AND usage_usagehourly.model = r.model"
        )
        cursor.execute(
            "UPDATE usage_usagedaily SET incomplete = d.n, incomplete_errors = d.n_err"
            f" FROM (SELECT {day} AS day, h.project_id, h.key_slot, h.model,"
            " sum(h.incomplete) AS n, sum(h.incomplete_errors) AS n_err"
            " FROM usage_usagehourly h WHERE h.incomplete > 0 GROUP BY 1, 2, 3, 4) AS d"
            " WHERE usage_usagedaily.day = d.day AND usage_usagedaily.project_id = d.project_id"
            " AND usage_usagedaily.key_slot = d.key_slot AND usage_usagedaily.model = d.model"
        )


class Migration(migrations.Migration):
    dependencies = [("usage", "0007_usage_daily")]

    operations = [
        *(
            migrations.AddField(
                model_name=model,
                name=name,
                field=models.PositiveBigIntegerField(default=0, db_default=0, verbose_name=label),
            )
            for model in ("usagehourly", "usagedaily")
            for name, label in (
                ("incomplete", "incomplete calls"),
                ("incomplete_errors", "incomplete calls counted as errors"),
            )
        ),
        migrations.RunPython(fill, migrations.RunPython.noop),
    ]
