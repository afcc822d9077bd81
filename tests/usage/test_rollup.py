"""The one rollup rule (usage/rollup.py): its three forms agree, and every path applies it.

Each record shape that the rule tells apart is written through the real write path
(the PostgreSQL statement on PostgreSQL, the portable UPSERT elsewhere); the stored
rollups must equal the rule folded in Python and the ORM recomputation check_rollups
uses, and the error condition must pick the same records in Python, SQL and the ORM.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from tests.usage.conftest import response_json
from usage import rollup
from usage.models import UsageHourly, UsageRecord
from usage.selectors import rollups_recomputed, rollups_stored
from usage.services import ingestion_token_lookup, usage_record_create

pytestmark = pytest.mark.django_db

SINCE = datetime(2026, 7, 1, tzinfo=UTC)
UNTIL = datetime(2026, 7, 2, tzinfo=UTC)


@pytest.fixture
def records(project, api_key, settings):
    """One record of every shape the rule distinguishes, with and without a key."""
    settings.USAGE_RAW_RETENTION_DAYS = 0
    make = usage_record_create
    make(project=project, api_key=api_key, source="playground", response=response_json("ok"))
    make(project=project, source="ingest", response=response_json("failed", status="failed"))
    make(
        project=project,
        source="ingest",
        model="gpt-5.5",
        response_id="err",
        status="error",
        usage={},
        occurred_at="2026-07-01T12:10:00Z",
    )
    make(
        project=project,
        source="ingest",
        model="gpt-5.5",
        response_id="typed",
        error_type="rate_limit",
        usage={},
        occurred_at="2026-07-01T12:20:00Z",
    )
    make(
        project=project,
        api_key=api_key,
        source="playground",
        response=response_json("cut", status="incomplete"),
        error_type="stream_cut",
    )
    make(project=project, source="ingest", response=response_json("stopped", status="incomplete"))
    make(project=project, source="ingest", response=response_json("free", model="whisper-1"))
    return list(UsageRecord.objects.values(*rollup.SOURCE_COLUMNS, "response_id"))


def test_stored_rollups_equal_the_rule_folded_and_the_recomputation(records, project):
    folded = {
        key: dict(zip(rollup.COUNTER_NAMES, numbers, strict=True))
        for key, (_, numbers) in rollup.fold(records).items()
    }
    stored = rollups_stored(since=SINCE, until=UNTIL, project=project)
    assert stored == folded
    assert rollups_recomputed(since=SINCE, until=UNTIL, project=project) == folded
    totals = {
        c: sum(b[c] for b in folded.values()) for c in ("requests", "errors", "unpriced_requests")
    }
    # failed, error, rate_limit and the cut stream are errors; the stopped stream is not.
    assert totals == {"requests": 7, "errors": 4, "unpriced_requests": 1}


def test_the_error_condition_picks_the_same_records_in_python_sql_and_the_orm(records):
    in_python = {r["response_id"] for r in records if rollup.IS_ERROR.holds(r)}
    in_orm = set(
        UsageRecord.objects.filter(rollup.IS_ERROR.q()).values_list("response_id", flat=True)
    )
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT response_id FROM {UsageRecord._meta.db_table} WHERE {rollup.IS_ERROR.sql}"
        )
        in_sql = {rid for (rid,) in cursor.fetchall()}
    assert in_python == in_orm == in_sql == {"failed", "err", "typed", "cut"}
    assert rollup.is_error(status="incomplete", error_type="") is False
    assert rollup.is_error(status="incomplete", error_type="stream_cut") is True


def test_the_unpriced_condition_picks_the_same_records_in_python_sql_and_the_orm(records):
    in_python = {r["response_id"] for r in records if rollup.IS_UNPRICED.holds(r)}
    in_orm = set(
        UsageRecord.objects.filter(rollup.IS_UNPRICED.q()).values_list("response_id", flat=True)
    )
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT response_id FROM {UsageRecord._meta.db_table} WHERE {rollup.IS_UNPRICED.sql}"
        )
        in_sql = {rid for (rid,) in cursor.fetchall()}
    assert in_python == in_orm == in_sql == {"free"}


def test_every_hourly_counter_is_in_the_rule():
    counters = {f.name for f in UsageHourly._meta.concrete_fields} - {
        "id",
        "hour",
        "organization",
        "project",
        "key_slot",
        "model",
        "created_at",
        "updated_at",
    }
    assert counters == set(rollup.COUNTER_NAMES)


def test_check_rollups_takes_a_project_by_public_id(records, project, capsys):
    call_command(
        "check_rollups", since="2026-07-01", until="2026-07-02", project=str(project.public_id)
    )
    assert "match" in capsys.readouterr().out


def test_check_rollups_explains_a_project_id_that_is_not_one(records):
    with pytest.raises(CommandError, match="--project: 'proj_123' is not a project's public id"):
        call_command("check_rollups", since="2026-07-01", until="2026-07-02", project="proj_123")
    with pytest.raises(CommandError, match="--project: no usage is recorded"):
        call_command(
            "check_rollups",
            since="2026-07-01",
            until="2026-07-02",
            project="00000000-0000-4000-8000-000000000000",
        )


def test_the_token_lookup_is_one_orm_query_with_its_project(
    ingest_token, project, django_assert_num_queries
):
    """The lookup goes through the ORM (seen by Django, on every backend), project included."""
    row, plaintext = ingest_token
    with django_assert_num_queries(1):
        found = ingestion_token_lookup(plaintext)
        assert found.pk == row.pk
        assert (found.project.public_id, found.project.organization_id) == (
            project.public_id,
            project.organization_id,
        )
