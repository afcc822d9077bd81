"""Indexes of the request log (usage/request_log.py, docs/dashboard.md).

The key filter reads (api_key, occurred_at, id) in the log's order; the id search is an
equality on a partial index of each request id (empty ids are left out). The key's own
foreign-key index goes: the new index starts with api_key and serves the foreign key (the
SET_NULL when a key is deleted) as well, so ingestion maintains no extra index for it. The
new index is built before the old one is dropped, so the foreign key is never unindexed.
"""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("keys", "0004_rotationreminder"),
        ("orgs", "0005_output_cap_help_text"),
        ("usage", "0005_budgets"),
    ]

    operations = [
        migrations.AddIndex(
            model_name="usagerecord",
            index=models.Index(fields=["api_key", "occurred_at", "id"], name="usage_rec_key_time"),
        ),
        migrations.AlterField(
            model_name="usagerecord",
            name="api_key",
            field=models.ForeignKey(
                blank=True,
                db_index=False,
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="usage_records",
                to="keys.apikey",
                verbose_name="API key",
            ),
        ),
        migrations.AddIndex(
            model_name="usagerecord",
            index=models.Index(
                condition=models.Q(("server_request_id", ""), _negated=True),
                fields=["server_request_id"],
                name="usage_rec_server_req",
            ),
        ),
        migrations.AddIndex(
            model_name="usagerecord",
            index=models.Index(
                condition=models.Q(("client_request_id", ""), _negated=True),
                fields=["client_request_id"],
                name="usage_rec_client_req",
            ),
        ),
    ]
