"""The dashboard's range parameter: whole local days in the billing timezone, and a
message naming the field for every bad value (never an exception)."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from platformadmin.dashboard.ranges import MAX_CUSTOM_DAYS, parse_range
from tests.factories import OrganizationFactory

NOW = datetime(2026, 11, 15, 3, 30, tzinfo=UTC)  # 14 Nov 22:30 in New York

pytestmark = pytest.mark.django_db


@pytest.fixture
def org():
    return OrganizationFactory(billing_timezone="America/New_York")


def test_default_is_this_month_in_the_billing_timezone(org):
    rng, errors = parse_range({}, organization=org, now=NOW)
    assert errors == []
    assert rng.key == "month"
    assert (rng.first, rng.last) == (date(2026, 11, 1), date(2026, 11, 14))
    assert rng.start == datetime(2026, 11, 1, 4, tzinfo=UTC)  # EDT until 1 Nov 06:00 UTC
    assert rng.end == datetime(2026, 11, 15, 5, tzinfo=UTC)  # EST
    assert rng.query == {"range": "month"}


@pytest.mark.parametrize(
    ("key", "first", "last"),
    [
        ("today", date(2026, 11, 14), date(2026, 11, 14)),
        ("7d", date(2026, 11, 8), date(2026, 11, 14)),
        ("30d", date(2026, 10, 16), date(2026, 11, 14)),
        ("last-month", date(2026, 10, 1), date(2026, 10, 31)),
    ],
)
def test_named_ranges(org, key, first, last):
    rng, errors = parse_range({"range": key}, organization=org, now=NOW)
    assert errors == []
    assert (rng.key, rng.first, rng.last) == (key, first, last)
    assert len(rng.days) == (last - first).days + 1


def test_custom_range_keeps_its_dates_in_the_url(org):
    rng, errors = parse_range(
        {"range": "custom", "start": "2026-01-01", "end": "2026-01-31"}, organization=org, now=NOW
    )
    assert errors == []
    assert rng.start == datetime(2026, 1, 1, 5, tzinfo=UTC)
    assert rng.end == datetime(2026, 2, 1, 5, tzinfo=UTC)
    assert rng.querystring == "range=custom&start=2026-01-01&end=2026-01-31"
    assert rng.span_label == "1 Jan 2026 – 31 Jan 2026"


def test_half_hour_timezone_starts_off_the_hour():
    org = OrganizationFactory(billing_timezone="Asia/Kolkata")
    rng, _ = parse_range({"range": "today"}, organization=org, now=NOW)
    assert rng.start == datetime(2026, 11, 14, 18, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("params", "field", "words"),
    [
        ({"range": "forever"}, "range", "choose one of"),
        ({"range": "custom"}, "start", "needs its start date"),
        ({"range": "custom", "start": "2026-01-01"}, "end", "needs its end date"),
        ({"range": "custom", "start": "01/02/2026", "end": "2026-01-31"}, "start", "not a date"),
        ({"range": "custom", "start": "2026-02-30", "end": "2026-03-01"}, "start", "not a date"),
        ({"range": "custom", "start": "2026-03-01", "end": "2026-02-01"}, "end", "swap them"),
        ({"range": "custom", "start": "0001-01-01", "end": "2026-02-01"}, "start", "between"),
        ({"range": "custom", "start": "2026-01-01", "end": "9999-12-31"}, "end", "between"),
        ({"range": "custom", "start": "2020-01-01", "end": "2026-01-01"}, "end", "at most"),
        (
            {"range": "custom", "start": "2026-01-01\x00", "end": "2026-01-02"},
            "start",
            "not a date",
        ),
        ({"range": "x" * 5000}, "range", "not a range"),
    ],
)
def test_bad_input_names_the_field_and_falls_back(org, params, field, words):
    rng, errors = parse_range(params, organization=org, now=NOW)
    assert rng.key == "month"
    assert [e.field for e in errors][:1] == [field]
    assert words in errors[0].message
    assert len(str(errors[0])) < 200


def test_longest_custom_range_is_accepted(org):
    rng, errors = parse_range(
        {"range": "custom", "start": "2025-01-01", "end": "2026-02-04"}, organization=org, now=NOW
    )
    assert errors == [] and len(rng.days) == MAX_CUSTOM_DAYS


def test_unknown_timezone_reads_as_utc():
    org = OrganizationFactory(billing_timezone="Mars/Olympus")
    rng, errors = parse_range({"range": "today"}, organization=org, now=NOW)
    assert errors == [] and rng.start == datetime(2026, 11, 15, tzinfo=UTC)
