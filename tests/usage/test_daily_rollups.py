"""Daily rollups (UsageDaily): written by the one rule with the hourly ones, checked by
check_rollups, filled by their migration, and read (usage/daily.py) so that any range or
local day of any billing timezone equals the sum of its raw records, exactly."""

from __future__ import annotations

import importlib
import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest
from django.apps import apps
from django.core.management import CommandError, call_command
from django.db import connection
from django.db.models import F, Q, Sum
from django.db.models.functions import TruncDate

from tests.factories import ProjectFactory, make_api_key
from tests.usage.conftest import response_json
from usage import rollup
from usage.daily import daily_plan, rollup_rows, whole_hours
from usage.models import UsageDaily, UsageHourly, UsageRecord
from usage.selectors import rollup_differences
from usage.services import build_record, usage_records_ingest

pytestmark = pytest.mark.django_db

FIRST = datetime(2026, 3, 27, tzinfo=UTC)  # the days around Europe's DST change (Mar 29)
DAYS = 6
MODELS = ("gpt-5.5", "gpt-5.4-mini", "ft:gpt-4.1-mini:acme:unpriced")


@pytest.fixture
def records(project, api_key, settings):
    """600 records over 6 days in two projects, three keys (one none), three models (one
    unpriced), errors and incomplete streams, at random times (seeded)."""
    settings.USAGE_RAW_RETENTION_DAYS = 0
    other = ProjectFactory(organization=project.organization, name="Research")
    other_key = make_api_key(other)
    rng = random.Random(12)
    for batch in range(6):
        for target, key in ((project, api_key), (project, None), (other, other_key)):
            drafts = []
            for i in range(rng.randint(20, 45)):
                when = FIRST + timedelta(seconds=rng.randrange(DAYS * 86400))
                status = rng.choice(("completed",) * 8 + ("failed", "incomplete"))
                drafts.append(
                    build_record(
                        project=target,
                        api_key=key,
                        source="ingest",
                        response=response_json(
                            f"r{batch}-{target.pk}-{key.pk if key else 0}-{i}",
                            model=rng.choice(MODELS),
                            inp=(inp := rng.randint(1, 5000)),
                            cached=rng.randint(0, inp // 2),
                            out=(out := rng.randint(1, 900)),
                            reasoning=rng.randint(0, out // 2),
                            status=status,
                            created_at=when.timestamp(),
                        ),
                        error_type="server_error" if rng.random() < 0.05 else "",
                    )
                )
            usage_records_ingest(project=target, drafts=drafts)
    return project.organization


def _raw(organization, start, end, zone=None) -> dict[tuple, list]:
    """The rule applied in Python to the raw records of [start, end), by local day and model."""
    out: dict[tuple, list] = {}
    rows = UsageRecord.objects.filter(
        organization=organization, occurred_at__gte=start, occurred_at__lt=end
    ).values(*rollup.SOURCE_COLUMNS)
    for r in rows:
        day = r["occurred_at"].astimezone(zone).date() if zone else None
        numbers = out.setdefault((day, r["model"]), rollup.zero())
        for i, counter in enumerate(rollup.COUNTERS):
            numbers[i] += counter.contribution(r)
    return out


def _assembled(organization, start, end, zone=None, cuts=()) -> dict[tuple, list]:
    """rollup_rows for the whole hours plus the raw records of the other hours."""
    out: dict[tuple, list] = {}
    rows = rollup_rows(
        scope=Q(organization_id=organization.pk),
        start=start,
        end=end,
        columns={"g_model": F("model")},
        day="g_day" if zone else None,
        zone=zone,
        cuts=cuts,
    )
    for row in rows:
        numbers = out.setdefault((row.get("g_day"), row["g_model"]), rollup.zero())
        for i, c in enumerate(rollup.COUNTER_NAMES):
            numbers[i] += row[f"s_{c}"]
    hours = set(whole_hours(start=start, end=end, cuts=cuts))
    edges = [
        r
        for r in UsageRecord.objects.filter(
            organization=organization, occurred_at__gte=start, occurred_at__lt=end
        ).values(*rollup.SOURCE_COLUMNS)
        if rollup.hour_of(r["occurred_at"]) not in hours
    ]
    for r in edges:
        day = r["occurred_at"].astimezone(zone).date() if zone else None
        numbers = out.setdefault((day, r["model"]), rollup.zero())
        for i, counter in enumerate(rollup.COUNTERS):
            numbers[i] += counter.contribution(r)
    return {k: v for k, v in out.items() if any(v)}


def test_the_write_path_keeps_daily_rollups_equal_to_the_raw_records(records):
    since, until = FIRST, FIRST + timedelta(days=DAYS)
    assert UsageDaily.objects.count() > 0
    assert rollup_differences(since=since, until=until, grain=rollup.DAY) == []
    assert rollup_differences(since=since, until=until, grain=rollup.HOUR) == []
    # And each day is the sum of its hours (the same rule at two sizes).
    sums = {f"s_{c}": Sum(c) for c in rollup.COUNTER_NAMES}
    by_hours = {
        (r["d"], r["project_id"], r["key_slot"], r["model"]): [
            r[f"s_{c}"] for c in rollup.COUNTER_NAMES
        ]
        for r in UsageHourly.objects.annotate(d=TruncDate("hour", tzinfo=UTC))
        .values("d", "project_id", "key_slot", "model")
        .annotate(**sums)
    }
    by_days = {
        (r["day"], r["project_id"], r["key_slot"], r["model"]): [r[c] for c in rollup.COUNTER_NAMES]
        for r in UsageDaily.objects.values(
            "day", "project_id", "key_slot", "model", *rollup.COUNTER_NAMES
        )
    }
    assert by_days == by_hours


def test_a_replay_adds_nothing_to_the_daily_rollups(records, project, api_key):
    before = list(UsageDaily.objects.order_by("pk").values())
    draft = build_record(
        project=project,
        api_key=api_key,
        source="ingest",
        response=response_json(f"r0-{project.pk}-{api_key.pk}-0", created_at=FIRST.timestamp()),
    )
    result = usage_records_ingest(project=project, drafts=[draft])
    assert result.duplicates == 1
    assert list(UsageDaily.objects.order_by("pk").values()) == before


def test_check_rollups_names_a_daily_bucket_that_differs(records, capsys):
    call_command("check_rollups", since="2026-03-27", until="2026-04-02")
    assert "match" in capsys.readouterr().out
    row = UsageDaily.objects.filter(model="gpt-5.5").order_by("day").first()
    UsageDaily.objects.filter(pk=row.pk).update(requests=F("requests") + 1)
    with pytest.raises(CommandError, match="1 rollup bucket"):
        call_command("check_rollups", since="2026-03-27", until="2026-04-02")
    out = capsys.readouterr().out
    assert f"{row.day:%Y-%m-%d} day" in out and "requests: stored" in out


def test_the_migrations_fill_daily_rollups_and_incomplete_counters(records):
    """0007 fills the daily rollups from the hourly ones; 0008 the incomplete counters of
    both from the raw records."""
    fields = ("day", "key_slot", "model", "cost", "incomplete", "incomplete_errors")
    expected = sorted(tuple(r.values()) for r in UsageDaily.objects.values(*fields))
    expected_hours = sorted(
        UsageHourly.objects.values_list("hour", "key_slot", "incomplete", "incomplete_errors")
    )
    assert any(r[-2] for r in expected)  # the dataset has incomplete calls
    UsageDaily.objects.all().delete()
    UsageHourly.objects.update(incomplete=0, incomplete_errors=0)
    editor = SimpleNamespace(connection=connection)
    importlib.import_module("usage.migrations.0007_usage_daily").fill_from_hourly(apps, editor)
    importlib.import_module("usage.migrations.0008_usage_incomplete_counters").fill(apps, editor)
    got = sorted(tuple(r.values()) for r in UsageDaily.objects.values(*fields))
    assert got == expected
    assert (
        sorted(
            UsageHourly.objects.values_list("hour", "key_slot", "incomplete", "incomplete_errors")
        )
        == expected_hours
    )


ZONES = ("UTC", "America/New_York", "Europe/Berlin", "Asia/Kolkata", "Australia/Lord_Howe")


@pytest.mark.parametrize("zone_name", ZONES)
def test_local_days_are_assembled_exactly_in_every_timezone(records, zone_name):
    """Whole-hour, half-hour and DST-changing offsets: per local day and model, the
    assembled figures equal the raw records' (costs to the unit)."""
    zone = ZoneInfo(zone_name)
    first_local = datetime(2026, 3, 28, tzinfo=zone)
    days = [first_local + timedelta(days=i) for i in range(4)]  # wall-clock midnights
    days = [d.replace(tzinfo=zone) for d in days]
    start, end = days[0].astimezone(UTC), days[-1].astimezone(UTC)
    cuts = [d.astimezone(UTC) for d in days[1:-1]]
    expected = {k: v for k, v in _raw(records, start, end, zone).items() if any(v)}
    assert expected  # the dataset covers these days
    assert _assembled(records, start, end, zone, cuts) == expected
    # And the whole range as one total, ending at an arbitrary instant.
    end_now = end + timedelta(hours=7, minutes=13)
    total = _raw(records, start, end_now)
    assert _assembled(records, start, end_now) == {k: v for k, v in total.items() if any(v)}


def test_costs_come_back_as_exact_decimals(records):
    zone = ZoneInfo("America/New_York")
    start = datetime(2026, 3, 28, tzinfo=zone).astimezone(UTC)
    end = datetime(2026, 3, 31, tzinfo=zone).astimezone(UTC)
    rows = rollup_rows(
        scope=Q(organization_id=records.pk),
        start=start,
        end=end,
        columns={},
        day="g_day",
        zone=zone,
    )
    assert all(isinstance(r["s_cost"], Decimal) for r in rows)


def test_utc_days_read_no_hourly_row_and_new_york_five_per_day():
    start = datetime(2026, 3, 1, tzinfo=UTC)
    end = start + timedelta(days=30)
    cuts = [start + timedelta(days=i) for i in range(1, 30)]
    plan = daily_plan(start=start, end=end, cuts=cuts, zone=ZoneInfo("UTC"))
    assert len(plan.days) == 30 and plan.hourly_rows == 0
    zone = ZoneInfo("America/New_York")  # EST (-5) until March 8, EDT (-4) after
    local = [datetime(2026, 3, 1, tzinfo=zone) + timedelta(days=i) for i in range(31)]
    start, end = local[0].astimezone(UTC), local[-1].astimezone(UTC)
    plan = daily_plan(
        start=start, end=end, cuts=[d.astimezone(UTC) for d in local[1:-1]], zone=zone
    )
    assert len(plan.days) == 30
    assert plan.hourly_rows <= 31 * 5  # the 4 or 5 hours each local midnight is off UTC's
    # Not grouped by day: one range reads whole days and at most the two edges' hours.
    plan = daily_plan(start=start, end=end)
    assert plan.hourly_rows <= 2 * 12


def test_one_query_reads_daily_and_hourly_rows(records, django_assert_num_queries):
    zone = ZoneInfo("Europe/Berlin")
    start = datetime(2026, 3, 27, tzinfo=zone).astimezone(UTC)
    end = datetime(2026, 4, 1, tzinfo=zone).astimezone(UTC)
    with django_assert_num_queries(1):
        rows = rollup_rows(
            scope=Q(organization_id=records.pk),
            start=start,
            end=end,
            columns={"g_project": F("project_id"), "g_key": F("key_slot")},
            day="g_day",
            zone=zone,
        )
    assert rows and all(r["s_requests"] > 0 for r in rows)
