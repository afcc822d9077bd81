"""A billing timezone change while a batch is being written: the rebuild waits for the
batch (its FOR SHARE on the zone), so no daily row is left cut in the old zone.

Real transactions, one thread each with its own connection; PostgreSQL only (CI)."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from django.db import OperationalError, connection, transaction

from tests.usage.conftest import response_json
from usage import rollup
from usage.daily import daily_rollups_rebuild, daily_zone
from usage.selectors import rollup_differences
from usage.services import build_record, usage_records_ingest

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        connection.vendor == "sqlite",
        reason="row locks are PostgreSQL's; in-memory SQLite answers 'table is locked' "
        "instead of waiting; run with DATABASE_URL=postgres://... (CI does)",
    ),
]

FIRST = datetime(2026, 5, 10, tzinfo=UTC)


def _drafts(project, prefix: str, n: int = 80):
    return [
        build_record(
            project=project,
            source="ingest",
            response=response_json(
                f"{prefix}-{i}", created_at=(FIRST + timedelta(minutes=37 * i)).timestamp()
            ),
        )
        for i in range(n)
    ]


def test_a_rebuild_waits_for_the_batch_that_holds_the_zone(project, settings):
    settings.USAGE_RAW_RETENTION_DAYS = 0
    usage_records_ingest(project=project, drafts=_drafts(project, "before"))  # zone: UTC
    organization_id = project.organization_id
    written, release = threading.Event(), threading.Event()
    times: dict[str, float] = {}
    errors: list = []

    def writer() -> None:
        try:
            with transaction.atomic():
                usage_records_ingest(project=project, drafts=_drafts(project, "during"))
                written.set()
                release.wait(timeout=20)
                times["writer_commit"] = time.monotonic()
        except Exception as exc:  # reported by the assertion below
            errors.append(exc)
        finally:
            connection.close()

    def rebuilder() -> None:
        try:
            written.wait(timeout=20)
            daily_rollups_rebuild(organization_id=organization_id, zone_name="America/New_York")
            times["rebuilt"] = time.monotonic()
        except Exception as exc:  # reported by the assertion below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=writer), threading.Thread(target=rebuilder)]
    for t in threads:
        t.start()
    assert written.wait(timeout=20)
    # The open batch holds its organization's zone: a lock for a rebuild is refused now.
    with pytest.raises(OperationalError, match="could not obtain lock"), transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT zone FROM usage_usagedailyzone WHERE organization_id = %s"
                " FOR UPDATE NOWAIT",
                [organization_id],
            )
    time.sleep(0.5)  # the rebuild is now waiting on the zone's lock
    assert "rebuilt" not in times
    release.set()
    for t in threads:
        t.join(timeout=60)
    assert not errors, errors
    assert times["rebuilt"] >= times["writer_commit"]
    assert daily_zone(organization_id=organization_id).key == "America/New_York"
    since, until = FIRST - timedelta(days=1), FIRST + timedelta(days=4)
    assert rollup_differences(since=since, until=until, grain=rollup.DAY) == []
    # A batch after the rebuild is cut in the new zone.
    usage_records_ingest(project=project, drafts=_drafts(project, "after"))
    assert rollup_differences(since=since, until=until, grain=rollup.DAY) == []
