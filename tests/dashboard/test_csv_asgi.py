"""The CSV exports under ASGI (uvicorn, as the console runs): served as an async stream,
so Django does not turn the rows into a list first; read lazily, chunk by chunk."""

from __future__ import annotations

import asyncio
import csv
import io
from datetime import timedelta

import pytest
import time_machine
from asgiref.sync import sync_to_async
from django.test import AsyncClient
from django.urls import reverse

from tests.dashboard.test_request_log_data import NOW, add_record

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _clock():
    with time_machine.travel(NOW, tick=False):
        yield


def test_the_log_export_streams_asynchronously_and_lazily(owner, organization, project):
    for i in range(3):
        add_record(project, when=NOW - timedelta(hours=i + 1))
    url = reverse("dashboard:request-log-csv", kwargs={"org_id": organization.public_id})

    async def go():
        client = AsyncClient()
        await client.aforce_login(owner)
        response = await client.get(url, {"range": "today"})
        assert response.status_code == 200
        # An async iterator: Django sends it as it comes (a sync one it would list first).
        assert response.is_async
        # Nothing is read before the first chunk is asked for: a record written now
        # is in the file.
        await sync_to_async(add_record)(project, when=NOW - timedelta(minutes=5))
        parts = [part async for part in response.streaming_content]
        return b"".join(parts).decode()

    rows = list(csv.reader(io.StringIO(asyncio.run(go()))))
    header, *records, total = rows
    assert len(records) == 4 and total[0] == "TOTAL" and total[1] == "4 requests"


def test_the_overview_export_streams_asynchronously(owner, organization, project):
    add_record(project, when=NOW - timedelta(hours=1))
    url = reverse("dashboard:overview-csv", kwargs={"org_id": organization.public_id})

    async def go():
        client = AsyncClient()
        await client.aforce_login(owner)
        response = await client.get(url, {"range": "7d"})
        assert response.is_async
        return b"".join([part async for part in response.streaming_content]).decode()

    *days, total = list(csv.reader(io.StringIO(asyncio.run(go()))))[1:]
    assert len(days) == 7 and total[0] == "TOTAL" and total[1] == "1"
