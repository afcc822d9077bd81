"""Queries per dashboard page do not grow with projects, keys, models or days: names of
projects and keys are fetched once per page, every panel is one grouped query."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from orgs.views.common import CURRENT_ORG_SESSION_KEY
from tests.factories import ProjectFactory, make_api_key
from usage.models import Budget
from usage.services import usage_record_create

pytestmark = pytest.mark.django_db

RANGE = {"range": "custom", "start": "2026-11-01", "end": "2026-11-30"}
# The pages' query counts, measured at 1 and at 13 projects (SQLite, with budgets): the
# same at both sizes. What they are made of (overview): session and user, the bell's
# unread count, the access check, the visible projects, the three top lists, the per-day
# chart, key names, month to date, the budget and its status (6, in usage.budgets), the
# organization switcher (its session write only when the organization changed). A ceiling
# stops slow growth that is the same at both sizes.
CEILING = 30


def _grow(organization, n: int, prefix: str = "P"):
    """n projects with a key each; usage on several days and models for each."""
    when = datetime(2026, 11, 3, 15, tzinfo=UTC)
    projects, keys = [], []
    for i in range(n):
        project = ProjectFactory(organization=organization, name=f"{prefix}{i:02}")
        key = make_api_key(project, name=f"k{i:02}")
        for day in range(3):
            usage_record_create(
                project=project,
                api_key=key,
                source="ingest",
                model=("gpt-4.1", "gpt-4.1-mini", "custom-x")[day],
                response_id=f"{prefix}{i}-{day}",
                usage={"input_tokens": 100, "output_tokens": 10},
                occurred_at=when + timedelta(days=day * 5, minutes=i),
            )
        projects.append(project)
        keys.append(key)
    Budget.objects.get_or_create(organization=organization, project=None, defaults={"amount": 5})
    Budget.objects.get_or_create(
        organization=organization, project=projects[0], defaults={"amount": 5}
    )
    return projects, keys


def _count(client, url) -> int:
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(url, RANGE)
    assert response.status_code == 200
    return len(ctx.captured_queries)


@pytest.mark.parametrize("page", ["overview", "project", "key"])
def test_queries_do_not_grow(client, owner, organization, page, django_assert_num_queries):
    client.force_login(owner)
    projects, keys = _grow(organization, 1)
    urls = {
        "overview": reverse("dashboard:overview", kwargs={"org_id": organization.public_id}),
        "project": reverse("dashboard:project", kwargs={"project_id": projects[0].public_id}),
        "key": reverse("dashboard:key", kwargs={"key_id": keys[0].public_id}),
    }
    client.get(urls[page], RANGE)  # the first page of a session also writes the session
    small = _count(client, urls[page])
    _grow(organization, 12, prefix="Q")  # 12 more projects, keys and their records
    with django_assert_num_queries(small):
        client.get(urls[page], RANGE)
    assert small <= CEILING


def test_the_session_is_written_only_when_the_organization_changes(client, owner, organization):
    client.force_login(owner)
    url = reverse("dashboard:overview", kwargs={"org_id": organization.public_id})
    session = client.session
    session[CURRENT_ORG_SESSION_KEY] = "another organization"
    session.save()

    def session_writes() -> list[str]:
        with CaptureQueriesContext(connection) as ctx:
            assert client.get(url, RANGE).status_code == 200
        return [q["sql"] for q in ctx.captured_queries if q["sql"].startswith("UPDATE")]

    assert any("django_session" in sql for sql in session_writes())
    assert client.session[CURRENT_ORG_SESSION_KEY] == str(organization.public_id)
    assert session_writes() == []  # the same organization again: nothing to save
