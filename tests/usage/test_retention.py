"""Retention: old raw records are deleted in batches; rollups stay."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.usage.conftest import response_json
from usage.models import UsageHourly, UsageRecord
from usage.services import usage_record_create
from usage.tasks import usage_records_purge

pytestmark = pytest.mark.django_db
NOW = datetime(2026, 9, 1, tzinfo=UTC)


def test_old_records_go_rollups_stay(project, settings):
    settings.USAGE_RAW_RETENTION_DAYS = 30
    for i in range(5):
        usage_record_create(
            project=project,
            source="ingest",
            response=response_json(f"old{i}", created_at=(NOW - timedelta(days=40)).timestamp()),
        )
    usage_record_create(
        project=project,
        source="ingest",
        response=response_json("new", created_at=(NOW - timedelta(days=1)).timestamp()),
    )
    rollups_before = list(
        UsageHourly.objects.values_list("hour", "requests", "cost").order_by("hour")
    )

    import time_machine

    with time_machine.travel(NOW, tick=False):
        assert usage_records_purge.apply(kwargs={"batch_size": 2}).get() == 5
        assert usage_records_purge.apply().get() == 0  # idempotent
    assert list(UsageRecord.objects.values_list("response_id", flat=True)) == ["new"]
    assert (
        list(UsageHourly.objects.values_list("hour", "requests", "cost").order_by("hour"))
        == rollups_before
    )


def test_zero_days_keeps_everything(project, settings):
    settings.USAGE_RAW_RETENTION_DAYS = 0
    usage_record_create(
        project=project,
        source="ingest",
        response=response_json("x", created_at=datetime(2020, 1, 1, tzinfo=UTC).timestamp()),
    )
    assert usage_records_purge.apply().get() == 0
    assert UsageRecord.objects.count() == 1


def test_the_purge_is_scheduled(settings):
    entries = [
        e
        for e in settings.CELERY_BEAT_SCHEDULE.values()
        if e["task"] == "usage.tasks.usage_records_purge"
    ]
    assert len(entries) == 1
