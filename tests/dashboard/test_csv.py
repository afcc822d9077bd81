"""CSV exports of the request log and of the overview: streamed, exact, totals equal to
the page's, safe to open in a spreadsheet (platformadmin/dashboard/request_log.py)."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from urllib.parse import urlencode

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from platformadmin.dashboard.request_log import csv_cell
from tests.dashboard.test_request_log_data import NOW, add_record
from tests.factories import ProjectFactory, make_api_key

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _clock():
    with time_machine.travel(NOW, tick=False):
        yield


def url(name: str, organization, **params) -> str:
    base = reverse(name, kwargs={"org_id": organization.public_id})
    return f"{base}?{urlencode(params)}" if params else base


def read_csv(response) -> list[list[str]]:
    assert response.streaming
    body = b"".join(response.streaming_content).decode("utf-8")
    return list(csv.reader(io.StringIO(body)))


def by_header(rows: list[list[str]]) -> list[dict[str, str]]:
    return [dict(zip(rows[0], row, strict=True)) for row in rows[1:]]


@pytest.fixture
def dataset(organization, project):
    """Two projects, two keys, priced and unpriced calls, an error, over ten days."""
    key = make_api_key(project, name="billing")
    staging = ProjectFactory(organization=organization, name="Staging")
    records = []
    for i in range(10):
        when = NOW - timedelta(days=i, hours=1)
        records.append(
            add_record(project, api_key=key, when=when, inp=1000 + i, cached=100, out=50)
        )
        records.append(add_record(staging, when=when, model="gpt-5.5", inp=300, out=7 * i))
    records.append(add_record(project, when=NOW - timedelta(hours=3), model="my-finetune-x"))
    records.append(
        add_record(
            project, when=NOW - timedelta(hours=4), response_id=None, error_type="rate_limit"
        )
    )
    return {"key": key, "staging": staging, "records": records}


def test_the_log_export_is_streamed_with_a_named_file(client, owner, organization, dataset):
    client.force_login(owner)
    response = client.get(url("dashboard:request-log-csv", organization, range="30d"))
    assert response.status_code == 200
    assert response.streaming
    assert response["Content-Type"].startswith("text/csv")
    disposition = response["Content-Disposition"]
    assert disposition == 'attachment; filename="requests-acme-2026-10-20-2026-11-18.csv"'


def test_the_log_export_reads_nothing_until_it_is_read(client, owner, organization, dataset):
    """Rows come from a lazy iterator: the view returns before any record is read, so
    the export holds a chunk at a time, not the range (peak RSS: benchmarks/dashboard.py)."""
    client.force_login(owner)
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url("dashboard:request-log-csv", organization, range="30d"))
    assert not [q for q in queries.captured_queries if "usage_usagerecord" in q["sql"]]
    with CaptureQueriesContext(connection) as queries:
        rows = read_csv(response)
    assert [q for q in queries.captured_queries if "usage_usagerecord" in q["sql"]]
    assert len(rows) == 1 + len(dataset["records"]) + 1


def test_log_export_totals_equal_the_page(client, owner, organization, dataset):
    client.force_login(owner)
    for params in ({"range": "30d"}, {"range": "7d", "key": dataset["key"].public_id}):
        page = client.get(url("dashboard:request-log", organization, **params))
        totals = page.context["totals"]
        rows = by_header(
            read_csv(client.get(url("dashboard:request-log-csv", organization, **params)))
        )
        *records, total = rows
        assert total["occurred at (UTC)"] == "TOTAL"
        assert total["project"] == f"{totals.requests} requests" == f"{len(records)} requests"
        assert total["model"] == f"{totals.unpriced_requests} unpriced"
        assert Decimal(total["cost (USD)"]) == totals.priced_cost
        assert Decimal(total["cost (USD)"]) == sum(
            (Decimal(r["cost (USD)"]) for r in records if r["cost (USD)"]), Decimal(0)
        )
        for column, attr in (
            ("input tokens", "input_tokens"),
            ("cached input tokens", "cached_input_tokens"),
            ("output tokens", "output_tokens"),
            ("total tokens", "total_tokens"),
        ):
            assert int(total[column]) == getattr(totals, attr), column
    assert totals.requests == 7  # the key filter and the 7-day range did apply


def test_log_export_follows_every_filter(client, owner, organization, dataset):
    client.force_login(owner)
    rows = by_header(
        read_csv(client.get(url("dashboard:request-log-csv", organization, status="error")))
    )
    assert [r["error type"] for r in rows[:-1]] == ["rate_limit"]
    rows = by_header(
        read_csv(
            client.get(
                url("dashboard:request-log-csv", organization, q=dataset["records"][3].response_id)
            )
        )
    )
    assert [r["response id"] for r in rows[:-1]] == [dataset["records"][3].response_id]


def test_member_export_has_only_their_projects(client, member, organization, dataset):
    client.force_login(member)
    rows = by_header(read_csv(client.get(url("dashboard:request-log-csv", organization))))
    assert {r["project"] for r in rows[:-1]} == {"Production"}
    rows = by_header(read_csv(client.get(url("dashboard:overview-csv", organization))))
    assert all("Staging" not in key for key in rows[0])


def test_money_is_an_exact_decimal_string(client, owner, organization, project):
    tiny = add_record(project, model="text-embedding-3-small", inp=1, out=0)  # $0.00000002
    client.force_login(owner)
    rows = by_header(read_csv(client.get(url("dashboard:request-log-csv", organization))))
    assert rows[0]["cost (USD)"] == format(tiny.cost, "f")
    assert "E" not in rows[0]["cost (USD)"] and Decimal(rows[0]["cost (USD)"]) == tiny.cost
    assert csv_cell(Decimal("1E-10")) == "0.0000000001"


def test_cells_that_could_run_as_formulas_are_neutralised(client, owner, organization):
    evil = ProjectFactory(organization=organization, name='=HYPERLINK("http://x","y")')
    add_record(
        evil, model="@SUM(1+1)", client_request_id="-2+3", server_request_id="+cmd|' /C calc'!A0"
    )
    client.force_login(owner)
    rows = by_header(read_csv(client.get(url("dashboard:request-log-csv", organization))))
    row = rows[0]
    assert row["project"].startswith("'=")
    assert row["model"] == "'@SUM(1+1)"
    assert row["client request id"] == "'-2+3"
    assert row["server request id"].startswith("'+")
    for bad_start in ("=", "+", "-", "@"):
        assert csv_cell(bad_start + "x") == "'" + bad_start + "x"
    assert csv_cell("plain") == "plain" and csv_cell(None) == ""


def test_times_in_the_export_are_in_the_billing_timezone(client, owner, organization, project):
    organization.billing_timezone = "America/New_York"
    organization.save()
    add_record(project, when=datetime(2026, 11, 18, 12, 0, tzinfo=UTC))
    client.force_login(owner)
    rows = read_csv(client.get(url("dashboard:request-log-csv", organization, range="today")))
    assert rows[0][0] == "occurred at (America/New_York)"
    assert rows[1][0] == "2026-11-18T07:00:00-05:00"


def test_a_bad_export_link_is_a_400_naming_the_field(client, owner, organization, dataset):
    client.force_login(owner)
    for params, field in (
        ({"project": "nope"}, "project"),
        ({"range": "custom", "start": "2026-13-01", "end": "2026-12-01"}, "start"),
        ({"status": "x"}, "status"),
    ):
        for name in ("dashboard:request-log-csv", "dashboard:overview-csv"):
            response = client.get(url(name, organization, **params))
            assert response.status_code == 400, (name, params)
            assert field in [e.field for e in response.context["errors"]]
    response = client.get(url("dashboard:overview-csv", organization, by="colour"))
    assert response.status_code == 400
    response = client.get(url("dashboard:overview-csv", organization, source="ingest"))
    assert response.status_code == 400


def test_outsiders_cannot_export(client, outsider, organization, dataset):
    client.force_login(outsider)
    for name in ("dashboard:request-log-csv", "dashboard:overview-csv"):
        assert client.get(url(name, organization)).status_code == 404


# --- the overview's export -----------------------------------------------------------------


def test_overview_export_totals_equal_the_overview(client, owner, organization, dataset):
    client.force_login(owner)
    for params in ({"range": "30d"}, {"range": "7d", "by": "model"}):
        overview = client.get(url("dashboard:overview", organization, **params))
        page_totals = overview.context["totals"]
        response = client.get(url("dashboard:overview-csv", organization, **params))
        assert response["Content-Disposition"].startswith('attachment; filename="usage-acme-')
        rows = by_header(read_csv(response))
        *days, total = rows
        assert total[next(iter(total))] == "TOTAL"
        assert int(total["requests"]) == page_totals.requests
        assert Decimal(total["cost (USD)"]) == page_totals.priced_cost
        assert int(total["unpriced calls"]) == page_totals.unpriced_requests
        assert int(total["total tokens"]) == page_totals.total_tokens
        # The days add up to the totals, and each day's stacks to the day.
        assert sum(int(d["requests"]) for d in days) == page_totals.requests
        assert sum(Decimal(d["cost (USD)"]) for d in days) == page_totals.priced_cost
        stacks = [k for k in rows[0] if k.startswith("cost: ")]
        for d in days:
            assert sum(Decimal(d[s]) for s in stacks if d[s]) == Decimal(d["cost (USD)"])


def test_overview_export_of_one_project_matches_the_raw_records(
    client, owner, organization, project, dataset
):
    client.force_login(owner)
    params = {"range": "30d", "project": project.public_id}
    rows = by_header(read_csv(client.get(url("dashboard:overview-csv", organization, **params))))
    mine = [r for r in dataset["records"] if r.project_id == project.pk]
    total = rows[-1]
    assert int(total["requests"]) == len(mine)
    assert Decimal(total["cost (USD)"]) == sum((r.cost for r in mine if r.cost), Decimal(0))
    assert int(total["input tokens"]) == sum(r.input_tokens for r in mine)


def test_a_key_reported_as_a_client_id_is_redacted_in_the_export(
    client, owner, organization, project
):
    leaked = "sk-proj-" + "L3akedKeyValue0123456789"
    add_record(project, client_request_id=leaked, error_type=f"bad {leaked}")
    client.force_login(owner)
    body = b"".join(client.get(url("dashboard:request-log-csv", organization)).streaming_content)
    assert leaked.encode() not in body and b"sk-proj-" in body
