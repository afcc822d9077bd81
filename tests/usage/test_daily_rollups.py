"""Daily rollups (UsageDaily): cut in the organization's billing timezone, written by the
one rule with the hourly ones, checked by check_rollups, filled and re-cut by their
migrations, rebuilt when the billing timezone changes, and read (usage/daily.py) so that
any range or local day of any timezone equals the sum of its raw records, exactly."""

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

from orgs.services import organization_update
from tests.factories import ProjectFactory, make_api_key
from tests.usage.conftest import response_json
from usage import rollup
from usage.daily import (
    daily_rollups_rebuild,
    daily_zone,
    read_plan,
    rollup_sums,
)
from usage.models import UsageDaily, UsageDailyZone, UsageHourly, UsageRecord
from usage.reports import Figures, UsageScope, _rollup_groups
from usage.selectors import rollup_differences
from usage.services import build_record, usage_records_ingest

pytestmark = pytest.mark.django_db

FIRST = datetime(2026, 3, 27, tzinfo=UTC)  # the days around Europe's DST change (Mar 29)
DAYS = 6
MODELS = ("gpt-5.5", "gpt-5.4-mini", "ft:gpt-4.1-mini:acme:unpriced")


@pytest.fixture
def records(project, api_key, settings):
    """600 records over 6 days in two projects, three keys (one none), three models (one
    unpriced), errors and incomplete streams, at random times (seeded); the organization
    bills in UTC."""
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


def _in_zone(organization, zone_name: str):
    """The organization moved to another billing timezone (its daily rollups follow)."""
    organization.billing_timezone = zone_name
    organization.save()
    return organization


def _raw(organization, start, end, zone=None) -> dict[tuple, Figures]:
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
    figures = {}
    for key, numbers in out.items():
        f = figures[key] = Figures()
        f.add({f"s_{c}": v for c, v in zip(rollup.COUNTER_NAMES, numbers, strict=True)}, "s_")
    return figures


def _read(organization, start, end, zone=None, cuts=()) -> dict[tuple, Figures]:
    """What the reports read: by local day (with ``zone``) and model, or by model."""
    by = ("day", "model") if zone else ("model",)
    got = _rollup_groups(
        scope=UsageScope(organization_id=organization.pk),
        start=start,
        end=end,
        by=by,
        zone=zone,
        cuts=cuts,
    )
    return {(k if zone else (None, *k)): v for k, v in got.items()}


def _by_local_day(zone: ZoneInfo, first: datetime, count: int):
    """``count`` consecutive local days of ``zone`` from ``first``'s date: their UTC
    start, end and inner midnights."""
    days = [
        datetime.combine(first.date() + timedelta(days=i), datetime.min.time(), tzinfo=zone)
        for i in range(count + 1)
    ]
    utc = [d.astimezone(UTC) for d in days]
    return utc[0], utc[-1], utc[1:-1]


def test_the_write_path_keeps_daily_rollups_equal_to_the_raw_records(records):
    since, until = FIRST, FIRST + timedelta(days=DAYS)
    assert UsageDaily.objects.count() > 0
    assert daily_zone(organization_id=records.pk).key == "UTC"
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


@pytest.mark.parametrize("zone_name", ["America/New_York", "Asia/Kolkata"])
def test_usage_written_in_a_billing_timezone_is_cut_in_its_local_days(
    organization, project, api_key, settings, zone_name
):
    """The first batch records the billing timezone; every later batch is cut in it (a
    :30 zone too: the write path buckets each record by its own local date)."""
    settings.USAGE_RAW_RETENTION_DAYS = 0
    _in_zone(organization, zone_name)
    zone = ZoneInfo(zone_name)
    rng = random.Random(3)
    drafts = [
        build_record(
            project=project,
            api_key=api_key,
            source="ingest",
            response=response_json(
                f"tz-{i}",
                created_at=(FIRST + timedelta(seconds=rng.randrange(3 * 86400))).timestamp(),
            ),
        )
        for i in range(120)
    ]
    usage_records_ingest(project=project, drafts=drafts[:60])
    usage_records_ingest(project=project, drafts=drafts[60:])
    assert daily_zone(organization_id=organization.pk).key == zone_name
    days = {r.occurred_at.astimezone(zone).date(): 0 for r in UsageRecord.objects.all()}
    for r in UsageRecord.objects.all():
        days[r.occurred_at.astimezone(zone).date()] += 1
    stored = dict(
        UsageDaily.objects.values_list("day").annotate(n=Sum("requests")).values_list("day", "n")
    )
    assert stored == days
    since, until = FIRST - timedelta(days=1), FIRST + timedelta(days=4)
    assert rollup_differences(since=since, until=until, grain=rollup.DAY) == []


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


def test_check_rollups_checks_local_days_after_a_timezone_change(records, capsys):
    _in_zone(records, "America/New_York")
    call_command("check_rollups", since="2026-03-27", until="2026-04-02")
    assert "match" in capsys.readouterr().out
    row = UsageDaily.objects.order_by("day").last()
    UsageDaily.objects.filter(pk=row.pk).update(cost=F("cost") + 1)
    with pytest.raises(CommandError, match="1 rollup bucket"):
        call_command("check_rollups", since="2026-03-27", until="2026-04-02")
    assert f"{row.day:%Y-%m-%d} day" in capsys.readouterr().out


def test_the_migrations_fill_daily_rollups_and_cut_them_in_billing_timezones(records):
    """0007 fills the daily rollups from the hourly ones; 0008 the incomplete counters of
    both from the raw records; 0009 re-cuts them in each organization's billing timezone
    (here a :30 one, whose midnights split hours: those come from the raw records)."""
    _in_zone(records, "Asia/Kolkata")
    fields = ("day", "key_slot", "model", "cost", "incomplete", "incomplete_errors")
    expected = sorted(tuple(r.values()) for r in UsageDaily.objects.values(*fields))
    expected_hours = sorted(
        UsageHourly.objects.values_list("hour", "key_slot", "incomplete", "incomplete_errors")
    )
    assert any(r[-2] for r in expected)  # the dataset has incomplete calls
    UsageDaily.objects.all().delete()
    UsageDailyZone.objects.all().delete()
    UsageHourly.objects.update(incomplete=0, incomplete_errors=0)
    editor = SimpleNamespace(connection=connection)
    importlib.import_module("usage.migrations.0007_usage_daily").fill_from_hourly(apps, editor)
    importlib.import_module("usage.migrations.0008_usage_incomplete_counters").fill(apps, editor)
    importlib.import_module(
        "usage.migrations.0009_daily_rollups_in_billing_timezone"
    ).cut_in_billing_timezones(apps, editor)
    got = sorted(tuple(r.values()) for r in UsageDaily.objects.values(*fields))
    assert got == expected
    assert daily_zone(organization_id=records.pk).key == "Asia/Kolkata"
    assert (
        sorted(
            UsageHourly.objects.values_list("hour", "key_slot", "incomplete", "incomplete_errors")
        )
        == expected_hours
    )


def test_a_billing_timezone_change_rebuilds_the_daily_rollups(records, owner):
    """Through the console's service (the form, the admin save alike): the rows are
    re-cut in the new zone, in the save's transaction, equal to the raw records."""
    before = UsageDaily.objects.count()
    organization_update(organization=records, actor=owner, billing_timezone="Europe/Berlin")
    assert daily_zone(organization_id=records.pk).key == "Europe/Berlin"
    assert UsageDailyZone.objects.get(organization=records).rebuilt_at is not None
    zone = ZoneInfo("Europe/Berlin")
    start, end, _ = _by_local_day(zone, FIRST.astimezone(zone), DAYS)
    stored = dict(
        UsageDaily.objects.values_list("day").annotate(n=Sum("requests")).values_list("day", "n")
    )
    raw: dict = {}
    for when in UsageRecord.objects.values_list("occurred_at", flat=True):
        raw[when.astimezone(zone).date()] = raw.get(when.astimezone(zone).date(), 0) + 1
    assert stored == raw and before > 0
    assert rollup_differences(since=start, until=end, grain=rollup.DAY) == []
    # Saving something else rebuilds nothing.
    UsageDaily.objects.update(requests=F("requests") + 0)
    stamp = UsageDailyZone.objects.get(organization=records).rebuilt_at
    organization_update(organization=records, actor=owner, name="Acme renamed")
    assert UsageDailyZone.objects.get(organization=records).rebuilt_at == stamp


def test_a_rebuild_keeps_what_an_hour_holds_past_the_raw_retention(records):
    """A :30 zone's midnight splits an hour: its raw records are split by their local day;
    if they were purged, the hour's rollup still counts, on the day the hour starts in."""
    zone = ZoneInfo("Asia/Kolkata")
    midnight = datetime(2026, 3, 29, tzinfo=zone).astimezone(UTC)  # 18:30 UTC
    split = rollup.hour_of(midnight)
    purged = UsageRecord.objects.filter(
        occurred_at__gte=split, occurred_at__lt=split + timedelta(hours=1)
    )
    assert purged.exists()
    hour_total = sum(UsageHourly.objects.filter(hour=split).values_list("requests", flat=True))
    purged.delete()
    daily_rollups_rebuild(organization_id=records.pk, zone_name="Asia/Kolkata")
    totals = sum(UsageDaily.objects.values_list("requests", flat=True))
    assert totals == sum(UsageHourly.objects.values_list("requests", flat=True))
    assert hour_total > 0


ZONES = ("UTC", "America/New_York", "Europe/Berlin", "Asia/Kolkata", "Australia/Lord_Howe")


@pytest.mark.parametrize("zone_name", ZONES)
def test_local_days_are_read_exactly_in_every_timezone(records, zone_name):
    """Whole-hour, half-hour and DST-changing offsets, the daily rollups cut in that zone:
    per local day and model the figures equal the raw records' (costs to the unit), and
    the days are whole daily rows."""
    _in_zone(records, zone_name)
    zone = ZoneInfo(zone_name)
    start, end, cuts = _by_local_day(zone, datetime(2026, 3, 28, tzinfo=zone), 3)
    expected = _raw(records, start, end, zone)
    assert expected  # the dataset covers these days
    assert _read(records, start, end, zone, cuts) == expected
    plan = read_plan(start=start, end=end, daily_zone=zone, group_zone=zone, cuts=cuts)
    assert plan.days is not None and plan.window.hours is None and not plan.window.has_edges
    # And the whole range as one total, ending at an arbitrary instant.
    end_now = end + timedelta(hours=7, minutes=13)
    assert _read(records, start, end_now) == _raw(records, start, end_now)


@pytest.mark.parametrize("zone_name", ["America/New_York", "Asia/Kolkata"])
def test_days_of_another_zone_than_the_daily_rollups_are_exact_too(records, zone_name):
    """Grouped by the days of a zone the daily rows are not cut in (a report in another
    timezone, a rebuild that never ran): no daily row is read, the hourly ones serve."""
    zone = ZoneInfo(zone_name)
    start, end, cuts = _by_local_day(zone, datetime(2026, 3, 28, tzinfo=zone), 3)
    assert daily_zone(organization_id=records.pk).key == "UTC"
    assert _read(records, start, end, zone, cuts) == _raw(records, start, end, zone)
    plan = read_plan(start=start, end=end, daily_zone=ZoneInfo("UTC"), group_zone=zone)
    assert plan.days is None
    # Ungrouped, the UTC days inside the range are daily rows and the edges hours.
    assert _read(records, start, end) == _raw(records, start, end)


def test_costs_come_back_as_exact_decimals(records):
    zone = ZoneInfo("UTC")
    start, end, _ = _by_local_day(zone, FIRST, 3)
    plan = read_plan(start=start, end=end + timedelta(hours=5), daily_zone=zone, group_zone=zone)
    sums = rollup_sums(
        scope=Q(organization_id=records.pk), plan=plan, columns={}, day=True, zone=zone
    )
    assert sums and all(isinstance(n[rollup.COST], Decimal) for n in sums.values())
    # Counts are ints on every backend (PostgreSQL sums bigint columns as numeric).
    requests, tokens = (
        rollup.COUNTER_NAMES.index("requests"),
        rollup.COUNTER_NAMES.index("input_tokens"),
    )
    assert all(type(n[requests]) is int and type(n[tokens]) is int for n in sums.values())


def test_a_range_reads_whole_days_and_only_the_hours_around_them():
    zone = ZoneInfo("America/New_York")  # EST (-5) until March 8, EDT (-4) after
    start, end, cuts = _by_local_day(zone, datetime(2026, 3, 1, tzinfo=zone), 30)
    plan = read_plan(start=start, end=end, daily_zone=zone, group_zone=zone, cuts=cuts)
    assert plan.days == (datetime(2026, 3, 1).date(), datetime(2026, 3, 31).date())
    assert plan.window.hours is None
    # "Today" so far: no whole day, its whole hours and the current partial hour.
    now = datetime(2026, 3, 31, 15, 42, tzinfo=UTC)
    plan = read_plan(start=end, end=now, daily_zone=zone, group_zone=zone)
    assert plan.days is None and plan.window.hours is not None and plan.window.has_edges


def test_one_query_reads_daily_and_hourly_rows(records, django_assert_num_queries):
    zone = ZoneInfo("UTC")
    start = datetime(2026, 3, 27, 7, tzinfo=UTC)
    end = datetime(2026, 4, 1, 5, tzinfo=UTC)
    plan = read_plan(start=start, end=end, daily_zone=zone, group_zone=zone)
    assert plan.days is not None and plan.window.hours is not None
    with django_assert_num_queries(1):
        sums = rollup_sums(
            scope=Q(organization_id=records.pk),
            plan=plan,
            columns={"g_project": F("project_id"), "g_key": F("key_slot")},
            day=True,
            zone=zone,
        )
    assert sums and all(n[0] > 0 for n in sums.values())  # requests, the first counter
