"""A usage write that fails is logged as an error with both request ids and counted, never
dropped; the reply still reaches the user. The write fails for real: the rollup table is
renamed away inside the test's transaction (rolled back afterwards, DDL included)."""

from __future__ import annotations

import logging

import pytest
from django.core.cache import cache
from django.db import connection

from platformadmin.openai.recording import usage_write_failures
from platformadmin.openai.services import GenerateParams, generate, generate_stream
from tests.platformadmin.helpers import sim_key
from usage.models import UsageHourly, UsageRecord

pytestmark = pytest.mark.django_db

PARAMS = GenerateParams(model="gpt-5.4-mini", input="One sentence about budgets, please.")


@pytest.fixture
def usage_table_gone():
    """The rollup table missing: the record write raises a real DatabaseError."""
    cache.clear()
    table = UsageHourly._meta.db_table
    quote = connection.ops.quote_name
    with connection.cursor() as cursor:
        cursor.execute(f"ALTER TABLE {quote(table)} RENAME TO {quote(table + '_gone')}")
    yield
    with connection.cursor() as cursor:
        cursor.execute(f"ALTER TABLE {quote(table + '_gone')} RENAME TO {quote(table)}")


def test_a_failed_usage_write_is_logged_with_both_ids_and_counted(
    project, openai_simulator, usage_table_gone, caplog
):
    key = sim_key(project, openai_simulator)
    with caplog.at_level(logging.INFO, logger="platformadmin.openai"):
        outcome = generate(api_key=key, project=project, params=PARAMS)
    assert outcome.ok and outcome.text  # the user still gets the reply
    assert outcome.record is None
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1, caplog.text
    message = errors[0].getMessage()
    assert "usage record not written" in message
    assert outcome.server_request_id and outcome.server_request_id in message
    assert outcome.client_request_id in message
    infos = [r for r in caplog.records if r.getMessage().startswith("openai call ")]
    assert len(infos) == 1  # the outcome's log line, once
    assert usage_write_failures() == 1


def test_a_stopped_stream_whose_write_fails_is_counted_too(
    project, openai_simulator, usage_table_gone
):
    key = sim_key(project, openai_simulator)
    stream = generate_stream(api_key=key, project=project, params=PARAMS, heartbeat=0.05)
    for event in stream:
        if event.kind == "delta":
            break
    stream.close()  # the reader left mid-stream
    assert usage_write_failures() == 1


def test_failures_are_counted_per_hour_over_the_last_day(
    project, openai_simulator, usage_table_gone, time_machine
):
    key = sim_key(project, openai_simulator)
    time_machine.move_to("2026-12-01 10:30:00Z", tick=False)
    generate(api_key=key, project=project, params=PARAMS)
    time_machine.move_to("2026-12-02 09:59:00Z", tick=False)
    generate(api_key=key, project=project, params=PARAMS)
    assert usage_write_failures() == 2
    time_machine.move_to(
        "2026-12-02 11:00:00Z", tick=False
    )  # the 10:00 hour is more than a day ago
    assert usage_write_failures() == 1


def test_a_write_that_works_counts_nothing(project, openai_simulator):
    cache.clear()
    outcome = generate(api_key=sim_key(project, openai_simulator), project=project, params=PARAMS)
    assert outcome.record is not None and UsageRecord.objects.count() == 1
    assert usage_write_failures() == 0
