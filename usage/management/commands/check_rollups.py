"""Recompute the hourly and daily rollups from the raw records and report every difference.

    manage.py check_rollups --since 2026-06-01 --until 2026-07-01 [--project <public id>]

Exit status 0 when every bucket matches, 1 when any differs (each one is printed).
Hours (and local days) older than the raw-record retention period are skipped: their raw
records are gone by design, and the rollups are then the only source. Daily buckets are
checked over the local days (the organization's billing timezone) the range touches.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from django.core.management.base import BaseCommand, CommandError
from django.utils.dateparse import parse_date, parse_datetime

from usage.rollup import GRAINS, HOUR, hour_of
from usage.selectors import project_with_usage, rollup_differences, usage_time_range
from usage.services import retention_cutoff


def _when(value: str, name: str) -> datetime:
    parsed = parse_datetime(value)
    if parsed is None:
        day = parse_date(value)
        if day is None:
            raise CommandError(
                f"--{name}: use a date (2026-06-01) or an ISO time (2026-06-01T12:00Z)."
            )
        parsed = datetime(day.year, day.month, day.day)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


class Command(BaseCommand):
    help = "Recompute hourly and daily usage rollups from raw records and report every difference."

    def add_arguments(self, parser):
        parser.add_argument(
            "--since",
            help="start (inclusive), date or ISO time, UTC by default; "
            "default: the oldest raw record",
        )
        parser.add_argument("--until", help="end (exclusive); default: after the newest raw record")
        parser.add_argument("--project", help="only this project (public id)")

    def handle(self, *args, **options):
        first, last = usage_time_range()
        since = _when(options["since"], "since") if options["since"] else first
        until = (
            _when(options["until"], "until")
            if options["until"]
            else (last + timedelta(hours=1) if last else None)
        )
        if since is None or until is None:
            self.stdout.write("No usage records: nothing to check.")
            return
        if until <= since:
            raise CommandError("--until must be after --since.")
        cutoff = retention_cutoff()
        if cutoff is not None:
            cutoff_hour = hour_of(cutoff) + timedelta(hours=1)
            if since < cutoff_hour:
                self.stdout.write(
                    f"Skipping hours before {cutoff_hour:%Y-%m-%d %H:00} UTC "
                    "(raw records past retention are deleted by design)."
                )
                since = cutoff_hour
                if until <= since:
                    return
        project = None
        if options["project"]:
            try:
                public_id = uuid.UUID(options["project"])
            except ValueError:
                raise CommandError(
                    f"--project: {options['project']!r} is not a project's public id "
                    "(a UUID, as in the project page's address)."
                ) from None
            project = project_with_usage(public_id=public_id)
            if project is None:
                raise CommandError(
                    f"--project: no usage is recorded for a project with public id "
                    f"{public_id}; check the id (the project page's address)."
                )
        diffs = []
        for grain in GRAINS:
            # A day that starts before the retention cutoff has lost raw records: with a
            # cutoff, only the local days (each organization's daily-rollup zone) after it.
            diffs += rollup_differences(
                since=since,
                until=until,
                project=project,
                grain=grain,
                whole_days_only=grain is not HOUR and cutoff is not None,
            )
        label = f"{since:%Y-%m-%d %H:%M} – {until:%Y-%m-%d %H:%M} UTC"
        if not diffs:
            self.stdout.write(self.style.SUCCESS(f"Rollups match the raw records for {label}."))
            return
        for d in diffs:
            fields = ", ".join(
                f"{name}: stored {got} != recomputed {exp}"
                for name, (got, exp) in d["fields"].items()
            )
            bucket = (
                f"{d['hour']:%Y-%m-%d %H:00}"
                if d["grain"] == HOUR.name
                else f"{d['day']:%Y-%m-%d} day"
            )
            self.stdout.write(
                f"{bucket} project={d['project_id']} key={d['key_slot']} "
                f"model={d['model']}: {fields}"
            )
        raise CommandError(
            f"{len(diffs)} rollup bucket(s) differ from the raw records for {label}.", returncode=1
        )
