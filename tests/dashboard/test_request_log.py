"""The request log and the record page: scope, filters, search, keyset pagination, hostile
input (usage/request_log.py, platformadmin/dashboard/request_log.py)."""

from __future__ import annotations

import base64
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from urllib.parse import urlencode

import pytest
import time_machine
from django.urls import reverse

from tests.dashboard.test_request_log_data import NOW, add_record
from tests.factories import ProjectFactory, UserFactory, add_project_member, make_api_key
from usage import request_log as log

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _clock():
    with time_machine.travel(NOW, tick=False):
        yield


def log_url(organization, **params) -> str:
    base = reverse("dashboard:request-log", kwargs={"org_id": organization.public_id})
    return f"{base}?{urlencode(params)}" if params else base


def record_url(organization, record) -> str:
    return reverse(
        "dashboard:record-detail",
        kwargs={"org_id": organization.public_id, "record_id": record.pk},
    )


def shown_ids(response) -> list[int]:
    return [row["id"] for row in response.context["page"].rows]


# --- scope ------------------------------------------------------------------------------


def test_it_lists_the_organizations_records_newest_first(client, owner, organization, project):
    old = add_record(project, when=NOW - timedelta(days=2))
    new = add_record(project, when=NOW - timedelta(hours=2))
    client.force_login(owner)
    response = client.get(log_url(organization))
    assert response.status_code == 200
    assert shown_ids(response) == [new.pk, old.pk]
    html = response.content.decode()
    assert new.response_id in html and new.server_request_id in html


def test_times_are_shown_in_the_billing_timezone(client, owner, organization, project):
    organization.billing_timezone = "Asia/Kolkata"  # UTC+5:30
    organization.save()
    add_record(project, when=datetime(2026, 11, 18, 8, 0, tzinfo=UTC))
    client.force_login(owner)
    html = client.get(log_url(organization)).content.decode()
    assert "2026-11-18 13:30:00" in html
    assert "Asia/Kolkata" in html


def test_a_project_member_sees_only_their_projects(client, member, organization, project):
    mine = add_record(project)
    other_project = ProjectFactory(organization=organization, name="Secret research")
    theirs = add_record(other_project, response_id="resp_secret_research")
    client.force_login(member)
    response = client.get(log_url(organization))
    assert shown_ids(response) == [mine.pk]
    html = response.content.decode()
    assert "Secret research" not in html and "resp_secret_research" not in html
    # Not through a search, a project filter or the record page either.
    response = client.get(log_url(organization, q="resp_secret_research"))
    assert shown_ids(response) == []
    response = client.get(log_url(organization, project=other_project.public_id))
    assert response.status_code == 400
    assert client.get(record_url(organization, theirs)).status_code == 404
    assert client.get(record_url(organization, mine)).status_code == 200


def test_readers_see_the_whole_organization(client, reader, organization, project):
    a = add_record(project)
    b = add_record(ProjectFactory(organization=organization))
    client.force_login(reader)
    assert set(shown_ids(client.get(log_url(organization)))) == {a.pk, b.pk}


def test_outsiders_get_404(client, outsider, organization, project):
    record = add_record(project)
    client.force_login(outsider)
    assert client.get(log_url(organization)).status_code == 404
    assert client.get(record_url(organization, record)).status_code == 404


def test_another_organizations_record_id_is_404(
    client, owner, organization, project, other_organization
):
    foreign = add_record(ProjectFactory(organization=other_organization))
    client.force_login(owner)
    assert client.get(record_url(organization, foreign)).status_code == 404


def test_writes_are_refused(client, owner, organization):
    client.force_login(owner)
    assert client.post(log_url(organization)).status_code == 405


# --- filters and search -----------------------------------------------------------------


def test_filters_narrow_the_log(client, owner, organization, project):
    key = make_api_key(project, name="billing")
    other_key = make_api_key(project, name="batch")
    other_project = ProjectFactory(organization=organization, name="Staging")
    by_key = add_record(project, api_key=key, model="gpt-5.4-mini")
    by_other_key = add_record(project, api_key=other_key, model="gpt-5.5")
    in_other_project = add_record(other_project, model="gpt-5.4-mini", source="playground")
    failed = add_record(project, response_id=None, status="error", error_type="rate_limit")
    cut = add_record(project, status="incomplete", error_type="stream_cut")
    unpriced = add_record(project, model="my-finetune-x")
    client.force_login(owner)

    def ids(**params):
        response = client.get(log_url(organization, **params))
        assert response.status_code == 200, response.context["errors"]
        return set(shown_ids(response))

    assert ids(key=key.public_id) == {by_key.pk}
    assert ids(project=other_project.public_id) == {in_other_project.pk}
    assert ids(model="gpt-5.5") == {by_other_key.pk}
    assert ids(source="playground") == {in_other_project.pk}
    assert ids(status="error") == {failed.pk}
    assert ids(status="incomplete") == {cut.pk}
    assert ids(status="unpriced") == {unpriced.pk} | {r.pk for r in (failed, cut) if r.cost is None}
    assert failed.pk not in ids(status="completed") and cut.pk not in ids(status="completed")
    assert by_key.pk in ids(status="completed")


def test_range_filter_uses_the_billing_days(client, owner, organization, project):
    today = add_record(project, when=NOW - timedelta(hours=1))
    last_week = add_record(project, when=NOW - timedelta(days=6, hours=1))
    last_month = add_record(project, when=datetime(2026, 10, 20, tzinfo=UTC))
    client.force_login(owner)
    assert shown_ids(client.get(log_url(organization, range="today"))) == [today.pk]
    assert shown_ids(client.get(log_url(organization, range="7d"))) == [today.pk, last_week.pk]
    assert shown_ids(client.get(log_url(organization, range="last-month"))) == [last_month.pk]
    custom = client.get(log_url(organization, range="custom", start="2026-10-20", end="2026-10-20"))
    assert shown_ids(custom) == [last_month.pk]


@pytest.mark.parametrize("field", ["response_id", "server_request_id", "client_request_id"])
def test_search_finds_a_record_by_each_id(client, owner, organization, project, field):
    wanted = add_record(project, client_request_id="my-client-id-42")
    add_record(project, client_request_id="another-client-id")
    client.force_login(owner)
    response = client.get(log_url(organization, q=getattr(wanted, field)))
    assert shown_ids(response) == [wanted.pk]


def test_search_is_exact_and_an_empty_id_matches_nothing(client, owner, organization, project):
    record = add_record(project, server_request_id="", client_request_id="")
    client.force_login(owner)
    assert shown_ids(client.get(log_url(organization, q=record.response_id[:-1]))) == []
    # A blank search is no search (every record), never "the records with an empty id".
    assert shown_ids(client.get(log_url(organization, q="   "))) == [record.pk]


# --- keyset pagination -------------------------------------------------------------------


def test_pages_walk_every_record_once_both_ways(client, owner, organization, project):
    """120 records, many sharing a timestamp (the id breaks the tie): older pages list each
    once, newest first; newer pages come back the same way."""
    made = []
    for i in range(120):
        made.append(add_record(project, when=NOW - timedelta(minutes=10 + i // 7)))
    expected = [r.pk for r in sorted(made, key=lambda r: (r.occurred_at, r.pk), reverse=True)]
    client.force_login(owner)
    seen, pages, url = [], [], log_url(organization)
    while url:
        response = client.get(url)
        assert response.status_code == 200
        pages.append(shown_ids(response))
        seen.extend(pages[-1])
        url = response.context["older_url"]
    assert seen == expected
    assert [len(p) for p in pages] == [50, 50, 20]
    # Back up from the last page: the middle page again, then the first (full) page.
    newer = response.context["newer_url"]
    middle = client.get(newer)
    assert shown_ids(middle) == pages[1]
    first = client.get(middle.context["newer_url"])
    assert shown_ids(first) == pages[0]
    assert first.context["newer_url"] is None


def test_the_cursor_keeps_the_filters(client, owner, organization, project):
    key = make_api_key(project)
    for i in range(55):
        add_record(project, api_key=key, when=NOW - timedelta(minutes=i + 1))
        add_record(project, when=NOW - timedelta(minutes=i + 1, seconds=30))
    client.force_login(owner)
    first = client.get(log_url(organization, key=key.public_id))
    assert f"key={key.public_id}" in first.context["older_url"]
    second = client.get(first.context["older_url"])
    assert len(shown_ids(second)) == 5
    assert second.context["older_url"] is None


def test_cursor_round_trip_and_tampering():
    when = datetime(2026, 11, 18, 12, 0, 0, 123456, tzinfo=UTC)
    cursor = log.Cursor(occurred_at=when, pk=42, direction=log.NEWER)
    assert log.Cursor.decode(cursor.encode()) == cursor
    token = cursor.encode()
    signed = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
    moved = signed.replace(".42:", ".41:")  # another record, same signature: refused
    assert moved != signed
    forged = base64.urlsafe_b64encode(moved.encode()).decode().rstrip("=")
    for bad in (forged, token[:-4], "x" * 500, "", "%%%", "é"):
        with pytest.raises(log.CursorError):
            log.Cursor.decode(bad)


# --- hostile input: a clear message naming the field, never a 500 ------------------------


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"project": "not-a-uuid"}, "project"),
        ({"project": str(uuid.uuid4())}, "project"),
        ({"key": "9" * 400}, "key"),
        ({"status": "exploded"}, "status"),
        ({"source": "fax"}, "source"),
        ({"model": "m" * 101}, "model"),
        ({"model": "gpt\x00-5"}, "model"),
        ({"q": "r" * 201}, "q"),
        ({"q": "resp_1\nreq_2"}, "q"),
        ({"cursor": "bm90LWEtY3Vyc29y"}, "cursor"),
        ({"cursor": "A" * 180}, "cursor"),
        ({"range": "forever"}, "range"),
        ({"range": "custom", "start": "99999-01-01", "end": "2026-01-01"}, "start"),
        ({"range": "custom", "start": "2026-01-01", "end": "2029-01-01"}, "end"),
    ],
)
def test_bad_filters_are_named_never_a_500(client, owner, organization, project, params, field):
    add_record(project)
    client.force_login(owner)
    response = client.get(log_url(organization, **params))
    assert response.status_code == 400
    assert field in [e.field for e in response.context["errors"]]
    html = response.content.decode()
    assert f'data-field="{field}"' in html
    assert 'id="no-records"' in html  # no rows under a filter that was refused


def test_another_organizations_key_is_refused(client, owner, organization, other_organization):
    foreign_key = make_api_key(ProjectFactory(organization=other_organization))
    client.force_login(owner)
    response = client.get(log_url(organization, key=foreign_key.public_id))
    assert response.status_code == 400
    assert foreign_key.hint not in response.content.decode()


def test_a_key_of_another_project_than_the_filter_is_refused(client, owner, organization, project):
    other = ProjectFactory(organization=organization)
    key = make_api_key(other)
    client.force_login(owner)
    response = client.get(log_url(organization, project=project.public_id, key=key.public_id))
    assert response.status_code == 400
    assert [e.field for e in response.context["errors"]] == ["key"]


@pytest.mark.parametrize("record_id", ["0", "99999999999999999999999", "-1", "abc"])
def test_bad_record_ids_are_404(client, owner, organization, record_id):
    client.force_login(owner)
    url = f"/dashboard/{organization.public_id}/requests/{record_id}/"
    assert client.get(url).status_code == 404


# --- the record page ----------------------------------------------------------------------


def test_record_page_shows_every_field(client, owner, organization, project):
    key = make_api_key(project, name="billing")
    record = add_record(
        project,
        api_key=key,
        model="gpt-5.4-mini",
        inp=12_345,
        cached=2_000,
        out=678,
        reasoning=90,
        client_request_id="client-abc",
        ratelimit_headers={
            "x-ratelimit-limit-requests": "5000",
            "x-ratelimit-remaining-tokens": "39000",
        },
    )
    client.force_login(owner)
    response = client.get(record_url(organization, record))
    assert response.status_code == 200
    html = response.content.decode()
    for text in (
        record.response_id,
        record.server_request_id,
        "client-abc",
        "x-ratelimit-limit-requests",
        "5000",
        "x-ratelimit-remaining-tokens",
        "12,345",
        "2,000",
        "678",
        key.hint,
        "billing",
        project.name,
    ):
        assert text in html, text
    assert record.cost is not None and record.cost > 0
    assert f'data-cost="{record.cost}"' in html
    assert "$" in html
    # Links back to the filtered log (that day, this project / key / model).
    assert f"key={key.public_id}" in html and f"project={project.public_id}" in html


def test_record_page_never_shows_the_secret(client, owner, organization, project):
    secret = "sk-proj-test" + "s3cr3tv4lu3" * 3
    key = make_api_key(project, secret=secret)
    record = add_record(project, api_key=key)
    client.force_login(owner)
    for url in (record_url(organization, record), log_url(organization)):
        html = client.get(url).content.decode()
        assert secret not in html and secret[-12:] not in html.replace(key.hint, "")


def test_unpriced_record_says_unpriced_never_zero(client, owner, organization, project):
    record = add_record(project, model="my-finetune-x")
    assert record.cost is None
    client.force_login(owner)
    html = client.get(record_url(organization, record)).content.decode()
    assert "unpriced" in html and "$0.00" not in html


# --- totals on the page -------------------------------------------------------------------


def test_page_totals_are_the_views_totals(client, owner, organization, project):
    key = make_api_key(project)
    records = [
        add_record(project, api_key=key, inp=1000 + i, out=10 * i, when=NOW - timedelta(hours=i))
        for i in range(1, 8)
    ]
    add_record(project, model="my-finetune-x")
    add_record(ProjectFactory(organization=organization), inp=99)
    client.force_login(owner)
    totals = client.get(log_url(organization, key=key.public_id, range="7d")).context["totals"]
    assert totals.requests == 7
    assert totals.priced_cost == sum((r.cost for r in records), Decimal(0))
    assert totals.input_tokens == sum(r.input_tokens for r in records)
    unfiltered = client.get(log_url(organization, range="7d")).context["totals"]
    assert unfiltered.requests == 9 and unfiltered.unpriced_requests == 1


def test_no_totals_for_filters_the_rollups_do_not_keep(client, owner, organization, project):
    add_record(project)
    client.force_login(owner)
    response = client.get(log_url(organization, source="ingest"))
    assert response.context["totals"] is None
    assert 'id="no-totals"' in response.content.decode()


# --- queries per page ---------------------------------------------------------------------


def test_queries_of_the_first_page_and_of_a_search(
    client, owner, organization, project, django_assert_num_queries
):
    keys = [make_api_key(ProjectFactory(organization=organization)) for _ in range(4)]
    for i in range(60):
        add_record(keys[i % 4].project, api_key=keys[i % 4], when=NOW - timedelta(minutes=i + 1))
    client.force_login(owner)
    url = log_url(organization)
    client.get(url)  # warm (session, content types)
    # session, user, organization + role, projects, keys, page rows, the view's totals (the
    # daily-rollup zone, one query on the rollups), catalog model ids, and the notification
    # bell of base.html.
    with django_assert_num_queries(10):
        assert len(shown_ids(client.get(url))) == 50
    wanted = keys[2]
    record = add_record(wanted.project, api_key=wanted, client_request_id="find-me")
    # A search has no totals: session, user, organization, projects, keys, rows, catalog,
    # bell.
    with django_assert_num_queries(8):
        assert shown_ids(client.get(log_url(organization, q="find-me"))) == [record.pk]


def test_queries_do_not_grow_with_projects_and_keys(
    client, owner, organization, django_assert_max_num_queries
):
    for _ in range(10):
        p = ProjectFactory(organization=organization)
        k = make_api_key(p)
        add_record(p, api_key=k)
        add_project_member(UserFactory(), p, "member")
    client.force_login(owner)
    client.get(log_url(organization))
    with django_assert_max_num_queries(10):
        client.get(log_url(organization))


def test_a_key_reported_as_a_client_id_is_not_shown_in_clear(client, owner, organization, project):
    """An application that sends a key as its client request id (or in an error type)
    must not get it shown back: redacted by shape on the pages (the CSV: test_csv.py)."""
    leaked = "sk-proj-" + "L3akedKeyValue0123456789"
    record = add_record(project, client_request_id=leaked, error_type=f"bad {leaked}")
    client.force_login(owner)
    for url in (log_url(organization), record_url(organization, record)):
        html = client.get(url).content.decode()
        assert leaked not in html and "sk-proj-" in html


def test_a_cursor_past_the_range_shows_nothing_and_the_way_back(
    client, owner, organization, project
):
    """A shared "older" link opened with another range: no rows, a link to the newest."""
    old = add_record(project, when=NOW - timedelta(days=20))
    add_record(project, when=NOW - timedelta(hours=1))
    cursor = log.Cursor(occurred_at=old.occurred_at, pk=old.pk).encode()
    client.force_login(owner)
    response = client.get(log_url(organization, range="today", cursor=cursor))
    assert response.status_code == 200 and shown_ids(response) == []
    assert 'id="page-newest"' in response.content.decode()
