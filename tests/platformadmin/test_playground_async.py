"""The playground's stream under ASGI: served by AsyncOpenAI on the event loop (no thread
per stream), with the sync path's events and Stop semantics."""

from __future__ import annotations

import asyncio
import json
import threading
import time

import pytest
from asgiref.sync import sync_to_async
from django.db import connections
from django.test import AsyncClient
from django.urls import reverse

from tests.platformadmin.helpers import sim_key
from usage.models import UsageRecord

pytestmark = pytest.mark.django_db(transaction=True)

STREAM, STOP = reverse("playground:stream"), reverse("playground:stop")
# The threads the earlier ASGI path started per stream (a generator thread and an SDK reader).
STREAM_THREADS = ("playground-stream", "openai-stream")


def form_data(project, key) -> dict:
    return {
        "project": str(project.public_id),
        "api_key": str(key.public_id),
        "model": "gpt-5.4-mini",
        "input": "Tell me about budgets.",
        "instructions": "",
        "temperature": "",
        "max_output_tokens": "",
        "reasoning_effort": "",
    }


def stream_threads() -> set[threading.Thread]:
    """The stream threads alive now (an earlier sync test's reader may still be finishing:
    the tests compare with what was there before they started)."""
    return {t for t in threading.enumerate() if t.name in STREAM_THREADS}


async def read_until(lines, kind: str) -> list[dict]:
    seen = []
    async for line in lines:
        seen.append(json.loads(line))
        if seen[-1]["type"] == kind:
            return seen
    raise AssertionError(f"no {kind!r} event in {seen}")


def test_three_streams_at_once_hold_no_thread_and_each_is_recorded(
    member, project, openai_simulator
):
    """Under ASGI the upstream is read by a task on the loop: while three replies are streaming,
    no per-stream thread exists; every call ends completed and recorded once."""
    openai_simulator.delta_delay = 0.05
    key = sim_key(project, openai_simulator)
    already = stream_threads()

    async def one(client: AsyncClient) -> tuple[list[dict], list[str]]:
        response = await client.post(STREAM, form_data(project, key))
        lines = aiter(response.streaming_content)
        seen = await read_until(lines, "delta")
        during = stream_threads() - already
        seen += [json.loads(line) async for line in lines]
        return seen, during

    async def go():
        client = AsyncClient()
        await client.aforce_login(member)
        results = await asyncio.gather(*(one(client) for _ in range(3)))
        await sync_to_async(connections.close_all)()
        return results

    results = asyncio.run(go())
    for events, during in results:
        assert during == set()
        kinds = [e["type"] for e in events if e["type"] != "waiting"]
        assert (
            kinds[:2] == ["accepted", "start"] and kinds[-1] == "done" and kinds.count("delta") >= 8
        )
        assert events[-1]["ok"] is True and events[-1]["status"] == "completed"
    assert UsageRecord.objects.filter(project=project, status="completed").count() == 3
    assert {e[0]["client_request_id"] for e, _ in results} == set(
        UsageRecord.objects.filter(project=project).values_list("client_request_id", flat=True)
    )


@pytest.mark.parametrize("moment", ["accepted", "delta"])
def test_under_asgi_a_stop_records_one_incomplete_call(member, project, openai_simulator, moment):
    """The Stop button under ASGI, before the model answered (``slow``) and mid-stream:
    one ``StreamStopped`` record, the ``done`` event says so, a late reply changes nothing."""
    openai_simulator.delta_delay = 0.2
    key = sim_key(project, openai_simulator, "slow" if moment == "accepted" else "")
    already = stream_threads()

    async def go() -> tuple[list[dict], list[dict], float]:
        client = AsyncClient()
        await client.aforce_login(member)
        started = time.monotonic()
        response = await client.post(STREAM, form_data(project, key))
        lines = aiter(response.streaming_content)
        before = await read_until(lines, moment)
        assert (
            stream_threads() - already == set()
        )  # the call is under way on the loop, no thread waits on it
        stop = await client.post(STOP, {"client_request_id": before[0]["client_request_id"]})
        assert stop.status_code == 202
        after = [json.loads(line) async for line in lines]
        took = time.monotonic() - started
        await sync_to_async(connections.close_all)()
        return before, after, took

    before, after, took = asyncio.run(go())
    cid, done = before[0]["client_request_id"], after[-1]
    assert (
        done["type"] == "done"
        and done["status"] == "incomplete"
        and "recorded as incomplete" in done["html"]
    )
    record = UsageRecord.objects.get(project=project)
    assert (record.status, record.error_type, record.client_request_id) == (
        "incomplete",
        "StreamStopped",
        cid,
    )
    if moment == "accepted":
        assert took < openai_simulator.slow_seconds and record.server_request_id == ""
    else:
        start = next(e for e in before if e["type"] == "start")
        assert record.server_request_id == start["request_id"] and record.output_tokens >= 1
    time.sleep(openai_simulator.slow_seconds if moment == "accepted" else 0.3)
    assert UsageRecord.objects.filter(project=project).count() == 1
