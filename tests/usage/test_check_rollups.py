"""manage.py check_rollups: silent when in step, names every difference otherwise."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.core.management import CommandError, call_command
from django.db.models import F

from tests.usage.conftest import response_json
from usage.models import UsageHourly
from usage.services import usage_record_create

pytestmark = pytest.mark.django_db


@pytest.fixture
def records(project, api_key, settings):
    settings.USAGE_RAW_RETENTION_DAYS = 0
    for i in range(3):
        usage_record_create(
            project=project,
            api_key=api_key,
            source="playground",
            response=response_json(f"r{i}", model="gpt-5.4"),
        )
    usage_record_create(
        project=project, source="ingest", response=response_json("u1", model="whisper-1")
    )


def test_no_difference_when_in_step(records, capsys):
    call_command("check_rollups", since="2026-07-01", until="2026-07-02")
    assert "match" in capsys.readouterr().out


def test_it_reports_every_difference_and_fails(records, capsys):
    UsageHourly.objects.filter(model="gpt-5.4").update(
        requests=F("requests") + 1, cost=F("cost") - 1
    )
    UsageHourly.objects.filter(model="whisper-1").delete()
    with pytest.raises(CommandError) as exc:
        call_command("check_rollups", since="2026-07-01T00:00Z", until="2026-07-02T00:00Z")
    assert exc.value.returncode == 1
    out = capsys.readouterr().out
    assert "model=gpt-5.4" in out and "requests: stored 4 != recomputed 3" in out
    assert "cost: stored" in out
    assert "model=whisper-1" in out and "unpriced_requests: stored 0 != recomputed 1" in out
    assert "2 rollup bucket(s) differ" in str(exc.value)


def test_a_stray_rollup_without_records_is_a_difference(records):
    first = UsageHourly.objects.first()
    UsageHourly.objects.create(
        hour=datetime(2026, 7, 1, 15, tzinfo=UTC),
        organization_id=first.organization_id,
        project_id=first.project_id,
        model="gpt-5",
        requests=1,
    )
    with pytest.raises(CommandError):
        call_command("check_rollups", since="2026-07-01", until="2026-07-02")


def test_bad_arguments_are_explained():
    with pytest.raises(CommandError, match="--since"):
        call_command("check_rollups", since="yesterday", until="2026-07-02")


def test_many_small_writes_into_one_hour_still_match(project, settings, capsys):
    """300 single writes into one bucket: the rollup is added to 300 times. With costs
    stored as REAL (SQLite) the sum drifted ("stored 0.0859500000 != recomputed
    0.0859499999999997"); as integer units it is exact."""
    settings.USAGE_RAW_RETENTION_DAYS = 0
    for i in range(300):
        usage_record_create(
            project=project,
            source="playground",
            response=response_json(
                f"small{i}", model="gpt-5.5", inp=45, cached=3, out=2, reasoning=0
            ),
        )
    call_command("check_rollups", since="2026-07-01", until="2026-07-02")
    assert "match" in capsys.readouterr().out
    assert UsageHourly.objects.get().cost == 300 * Decimal(
        "0.0002715"
    )  # (42×5 + 3×0.5 + 2×30) / 1M
