"""The dashboard's date range: ``?range=today|7d|30d|month|last-month|custom`` (with
``start`` and ``end`` as ``YYYY-MM-DD`` for ``custom``), read in the organization's
billing timezone.

Every range is whole local days, ``[first day 00:00, day after the last 00:00)`` in the
billing timezone, as aware UTC datetimes: so a range on a whole-hour timezone starts and
ends on UTC hours and is read from the hourly rollups alone. A range that names days to
come ends there too (nothing is recorded in the future).

Bad input never raises: the page gets the default range and a ``RangeError`` per field
that names the field and the fix; the range stays in the URL (``DateRange.query``) so a
view can be shared and every link of the page keeps it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from django.utils import timezone

from usage.daily import local_midnight
from usage.selectors import billing_zone

RANGE_CHOICES: tuple[tuple[str, str], ...] = (
    ("today", "Today"),
    ("7d", "Last 7 days"),
    ("30d", "Last 30 days"),
    ("month", "This month"),
    ("last-month", "Last month"),
    ("custom", "Custom"),
)
RANGE_KEYS = tuple(key for key, _ in RANGE_CHOICES)
DEFAULT_RANGE = "month"
# A custom range longer than this is refused: the per-day chart and tables stay readable
# and a hostile URL cannot ask for a century of buckets.
MAX_CUSTOM_DAYS = 400
# Dates outside these years are refused before any arithmetic (no OverflowError on
# 9999-12-31 + 1 day, no year-1 timezone conversions).
MIN_YEAR, MAX_YEAR = 2000, 2100
DATE_FORMAT_HINT = "YYYY-MM-DD, e.g. 2026-11-01"


@dataclass(frozen=True)
class RangeError:
    """A refused parameter: ``field`` is the query parameter, ``message`` says the fix."""

    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


@dataclass(frozen=True)
class DateRange:
    """Whole local days ``first``..``last`` (inclusive) in ``zone``; ``start``/``end``
    are the same instants in UTC, end exclusive."""

    key: str
    first: date
    last: date
    zone: ZoneInfo
    label: str

    @property
    def start(self) -> datetime:
        return local_midnight(self.first, self.zone)

    @property
    def end(self) -> datetime:
        return local_midnight(self.last + timedelta(days=1), self.zone)

    @property
    def days(self) -> list[date]:
        """Every local day of the range, oldest first (the per-day chart's x axis)."""
        return [self.first + timedelta(days=i) for i in range((self.last - self.first).days + 1)]

    @property
    def query(self) -> dict[str, str]:
        """The parameters that select this range again (custom ranges carry their dates)."""
        if self.key == "custom":
            return {
                "range": "custom",
                "start": self.first.isoformat(),
                "end": self.last.isoformat(),
            }
        return {"range": self.key}

    @property
    def querystring(self) -> str:
        """``range=...`` (and ``start``/``end``), URL-encoded, for links that keep the range."""
        return urlencode(self.query)

    @property
    def span_label(self) -> str:
        """The days it covers, as people read them: ``1 Nov 2026 – 30 Nov 2026``."""
        if self.first == self.last:
            return _day_label(self.first)
        return f"{_day_label(self.first)} – {_day_label(self.last)}"


def _day_label(day: date) -> str:
    return f"{day.day} {day:%b %Y}"


def _month_first(day: date) -> date:
    return day.replace(day=1)


def _named_range(key: str, today: date, zone: ZoneInfo) -> DateRange:
    label = dict(RANGE_CHOICES)[key]
    if key == "today":
        first = today
    elif key == "7d":
        first = today - timedelta(days=6)
    elif key == "30d":
        first = today - timedelta(days=29)
    elif key == "month":
        first = _month_first(today)
    else:  # last-month
        last = _month_first(today) - timedelta(days=1)
        return DateRange(key=key, first=_month_first(last), last=last, zone=zone, label=label)
    return DateRange(key=key, first=first, last=today, zone=zone, label=label)


def _parse_day(params: Mapping[str, str], name: str, errors: list[RangeError]) -> date | None:
    raw = (params.get(name) or "").strip()
    if not raw:
        errors.append(
            RangeError(name, f"a custom range needs its {name} date ({DATE_FORMAT_HINT}).")
        )
        return None
    try:
        day = date.fromisoformat(raw) if len(raw) == 10 else None
    except ValueError:
        day = None
    if day is None:
        errors.append(RangeError(name, f"“{raw[:40]}” is not a date: use {DATE_FORMAT_HINT}."))
        return None
    if not MIN_YEAR <= day.year <= MAX_YEAR:
        errors.append(RangeError(name, f"pick a date between {MIN_YEAR} and {MAX_YEAR}."))
        return None
    return day


def parse_range(
    params: Mapping[str, str], *, organization, now: datetime | None = None
) -> tuple[DateRange, list[RangeError]]:
    """The range the query asks for, in the organization's billing timezone, and the
    errors of its parameters (the default range is returned with them)."""
    zone = billing_zone(organization=organization)
    today = (now or timezone.now()).astimezone(zone).date()
    errors: list[RangeError] = []
    key = (params.get("range") or "").strip() or DEFAULT_RANGE
    if key not in RANGE_KEYS:
        errors.append(
            RangeError(
                "range", f"“{key[:40]}” is not a range: choose one of {', '.join(RANGE_KEYS)}."
            )
        )
        return _named_range(DEFAULT_RANGE, today, zone), errors
    if key != "custom":
        return _named_range(key, today, zone), errors
    first = _parse_day(params, "start", errors)
    last = _parse_day(params, "end", errors)
    if first and last:
        if last < first:
            errors.append(RangeError("end", "the end date is before the start date: swap them."))
        elif (last - first).days + 1 > MAX_CUSTOM_DAYS:
            errors.append(
                RangeError(
                    "end",
                    f"a custom range covers at most {MAX_CUSTOM_DAYS} days: "
                    f"this one has {(last - first).days + 1}.",
                )
            )
    if errors or first is None or last is None:
        return _named_range(DEFAULT_RANGE, today, zone), errors
    return DateRange(key="custom", first=first, last=last, zone=zone, label="Custom"), errors
