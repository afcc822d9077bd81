"""The hard limit in the client layer and the playground: the real SDK against the simulator.

Every outcome of a call that was sent settles its reservation after the usage record is
written (success, error, timeout, cut stream, stop); a call refused later (rate limit,
another hook) releases it; a refusal of the hook itself sends nothing.
"""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal

import pytest
from asgiref.sync import sync_to_async
from django.db import connection, connections
from django.test import AsyncClient
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from orgs.models import ProjectModelLimit
from platformadmin.openai import hooks
from platformadmin.openai.services import GenerateParams, generate, generate_stream
from tests.platformadmin.helpers import sim_key
from usage.models import Budget, BudgetReservation, ModelPrice, UsageHourly, UsageRecord
from usage.reservations import INPUT_OVERHEAD_TOKENS, budget_period

pytestmark = pytest.mark.django_db

MODEL = "gpt-5.4-mini"  # 0.75 input / 4.50 output per 1M tokens in the seed
INPUT = "Write one sentence about budgets."


def worst(max_output_tokens: int, text: str = INPUT) -> Decimal:
    tokens = len(text.encode()) + INPUT_OVERHEAD_TOKENS
    return (tokens * Decimal("0.75") + max_output_tokens * Decimal("4.50")) / 1_000_000


def params(**kw) -> GenerateParams:
    kw.setdefault("model", MODEL)
    kw.setdefault("input", INPUT)
    kw.setdefault("max_output_tokens", 200)
    return GenerateParams(**kw)


@pytest.fixture
def budget(project):
    project.max_retries = 0
    project.save()
    return Budget.objects.create(
        organization=project.organization, project=project, amount=Decimal("1"), hard_limit=True
    )


LONG_AGO = "2000-01-01T00:00Z"
FAR_AHEAD = "2999-01-01T00:00Z"


def period_label(project) -> str:
    return budget_period(organization=project.organization, now=timezone.now()).label


def only_reservation() -> BudgetReservation:
    [reservation] = BudgetReservation.objects.all()
    return reservation


def test_a_call_reserves_its_worst_case_and_settles_after_its_record(
    project, budget, openai_simulator
):
    outcome = generate(api_key=sim_key(project, openai_simulator), project=project, params=params())
    assert outcome.ok and outcome.record is not None
    reservation = only_reservation()
    assert reservation.amount == worst(200) and reservation.period
    assert reservation.settled_at is not None
    assert reservation.settled_at >= outcome.record.created_at  # the record came first
    assert outcome.record.cost < reservation.amount


@pytest.mark.parametrize("fault", ["500", "401", "429"])
def test_an_error_settles_the_reservation(project, budget, openai_simulator, fault):
    outcome = generate(
        api_key=sim_key(project, openai_simulator, fault), project=project, params=params()
    )
    assert not outcome.ok and outcome.record is not None and outcome.record.cost == 0
    assert only_reservation().settled_at is not None


def test_a_timeout_settles_the_reservation(project, budget, openai_simulator):
    project.request_timeout_seconds = 0.3  # below the form's minimum, to keep the suite fast
    project.save()
    outcome = generate(
        api_key=sim_key(project, openai_simulator, "slow"), project=project, params=params()
    )
    assert outcome.error_type == "APITimeoutError"
    assert only_reservation().settled_at is not None


def test_a_cut_stream_settles_the_reservation(project, budget, openai_simulator):
    events = list(
        generate_stream(
            api_key=sim_key(project, openai_simulator, "cut"), project=project, params=params()
        )
    )
    outcome = events[-1].outcome
    assert outcome.status == "incomplete" and outcome.record.cost > 0
    assert only_reservation().settled_at is not None


def test_a_stream_the_reader_left_settles_the_reservation(project, budget, openai_simulator):
    openai_simulator.delta_delay = 0.02
    stream = generate_stream(
        api_key=sim_key(project, openai_simulator), project=project, params=params()
    )
    [next(stream) for _ in range(3)]
    assert only_reservation().settled_at is None  # in flight: held
    stream.close()
    assert only_reservation().settled_at is not None
    assert UsageRecord.objects.get(project=project).error_type == "StreamStopped"


def test_a_call_over_the_limit_is_refused_and_never_sent(project, budget, openai_simulator):
    key = sim_key(project, openai_simulator)
    BudgetReservation.objects.create(
        budget=budget, period=period_label(project), amount=Decimal("0.5"), expires_at=LONG_AGO
    )  # its process died long ago: no longer counts
    first = generate(api_key=key, project=project, params=params())
    assert first.ok
    refused = generate(api_key=key, project=project, params=params(max_output_tokens=1_000_000))
    assert refused.status == "refused" and refused.error_type == "BudgetExceeded"
    assert refused.message.startswith(f"Budget of Production for {period_label(project)}: $0.0")
    assert "reserved of $1.00; this call could cost up to $4.50." in refused.message
    assert "Raise the budget or lower max output tokens." in refused.message
    assert refused.client_request_id in refused.message
    assert openai_simulator.requests == 1  # the refused call reached nobody
    assert BudgetReservation.objects.count() == 2  # the expired one and the first call's


def test_an_uncapped_call_is_refused_under_a_hard_limit(project, budget, openai_simulator):
    key = sim_key(project, openai_simulator)
    refused = generate(api_key=key, project=project, params=params(max_output_tokens=None))
    assert refused.error_type == "BudgetUncapped"
    assert "enter max output tokens" in refused.message
    project.max_output_tokens = 300  # the project's cap bounds every call
    project.save()
    assert generate(api_key=key, project=project, params=params(max_output_tokens=None)).ok
    assert only_reservation().amount == worst(300)
    assert openai_simulator.requests == 1


def test_a_model_with_no_price_is_refused_under_a_hard_limit(project, budget, openai_simulator):
    ModelPrice.objects.filter(model__model_id=MODEL).update(output_per_mtok=None)
    refused = generate(api_key=sim_key(project, openai_simulator), project=project, params=params())
    assert refused.error_type == "BudgetUnpriced"
    assert f"{MODEL} has no price in force" in refused.message
    assert openai_simulator.requests == 0 and not BudgetReservation.objects.exists()


def test_without_a_hard_limit_nothing_is_reserved_or_refused(project, openai_simulator):
    Budget.objects.create(
        organization=project.organization, project=project, amount=Decimal("0.000001")
    )  # alerts only: the console's calls are not stopped
    outcome = generate(
        api_key=sim_key(project, openai_simulator),
        project=project,
        params=params(max_output_tokens=None),
    )
    assert outcome.ok and not BudgetReservation.objects.exists()


def test_a_call_the_rate_limit_refuses_gives_its_reservation_back(
    project, budget, openai_simulator
):
    ProjectModelLimit.objects.create(project=project, model_id=MODEL, rpm=1)
    key = sim_key(project, openai_simulator)
    assert generate(api_key=key, project=project, params=params()).ok
    refused = generate(api_key=key, project=project, params=params())
    assert refused.error_type == "ProjectRateLimited"
    assert BudgetReservation.objects.filter(settled_at__isnull=True).count() == 0
    assert BudgetReservation.objects.count() == 2


def test_a_later_hook_that_refuses_releases_the_budget_reservation(
    project, budget, openai_simulator
):
    def deny(context):
        return hooks.HookDecision(False, "Another policy said no.", "PolicyRefused")

    hooks.register_pre_call_hook(deny)
    try:
        refused = generate(
            api_key=sim_key(project, openai_simulator), project=project, params=params()
        )
    finally:
        hooks.unregister_pre_call_hook(deny)
    assert refused.error_type == "PolicyRefused"
    assert only_reservation().settled_at is not None
    assert openai_simulator.requests == 0


@pytest.fixture
def rollups_gone():
    """The rollup table renamed: the usage write (and the spend read) raise a real error."""
    table = UsageHourly._meta.db_table
    quote = connection.ops.quote_name
    with connection.cursor() as cursor:
        cursor.execute(f"ALTER TABLE {quote(table)} RENAME TO {quote(table + '_gone')}")
    yield
    with connection.cursor() as cursor:
        cursor.execute(f"ALTER TABLE {quote(table + '_gone')} RENAME TO {quote(table)}")


def test_the_budget_state_unreadable_refuses_the_call(
    project, budget, openai_simulator, rollups_gone
):
    refused = generate(api_key=sim_key(project, openai_simulator), project=project, params=params())
    assert refused.status == "refused" and refused.error_type == "BudgetUnavailable"
    assert "could not be read" in refused.message and "not sent" in refused.message
    assert openai_simulator.requests == 0


def test_a_call_whose_record_was_not_written_keeps_its_reservation_until_it_expires(
    project, budget, openai_simulator
):
    stream = generate_stream(
        api_key=sim_key(project, openai_simulator), project=project, params=params()
    )
    first = next(stream)  # the call is under way: reserved
    assert first.kind == "start"
    table = UsageHourly._meta.db_table
    quote = connection.ops.quote_name
    with connection.cursor() as cursor:  # the usage write will fail now
        cursor.execute(f"ALTER TABLE {quote(table)} RENAME TO {quote(table + '_gone')}")
    try:
        outcome = list(stream)[-1].outcome
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f"ALTER TABLE {quote(table + '_gone')} RENAME TO {quote(table)}")
    assert outcome.ok and outcome.record is None
    assert only_reservation().settled_at is None  # its cost is in no spend: it still counts


# --- The playground page -----------------------------------------------------------------

INDEX, RUN = reverse("playground:index"), reverse("playground:run")


def form_data(project, key, **kw):
    data = {
        "project": str(project.public_id),
        "api_key": str(key.public_id),
        "model": MODEL,
        "input": INPUT,
        "max_output_tokens": "200",
    }
    data.update(kw)
    return data


def test_the_page_shows_spend_reservations_and_what_is_left(
    client, member, project, budget, openai_simulator
):
    sim_key(project, openai_simulator)
    budget.amount = Decimal("50")
    budget.save()
    BudgetReservation.objects.create(
        budget=budget, period=period_label(project), amount=Decimal("0.40"), expires_at=FAR_AHEAD
    )
    client.force_login(member)
    page = client.get(INDEX, {"project": project.public_id}).content.decode()
    assert 'id="budget-form"' in page and "Budget of Production" in page
    row = page[page.index('id="budget-form"') :]
    assert '<span class="budget-spent">$0.00</span> spent' in row
    assert '<span class="budget-reserved">$0.40</span> reserved of $50.00' in row
    assert '<span class="badge ok budget-left">$49.60</span> left' in row


def test_a_refused_call_shows_the_budget_message(client, member, project, budget, openai_simulator):
    key = sim_key(project, openai_simulator)
    budget.amount = worst(200) / 2
    budget.save()
    client.force_login(member)
    response = client.post(RUN, form_data(project, key))
    page = response.content.decode()
    assert response.status_code == 200
    assert "Budget of Production for " in page
    assert "Raise the budget or lower max output tokens." in page
    assert 'id="budget-result"' in page  # what is left, in the result panel
    assert openai_simulator.requests == 0


def test_a_project_without_a_hard_limit_shows_no_budget_table(
    client, member, project, openai_simulator
):
    sim_key(project, openai_simulator)
    client.force_login(member)
    page = client.get(INDEX, {"project": project.public_id}).content.decode()
    assert "budget-form" not in page


def test_the_pages_queries_do_not_grow_with_usage_under_a_hard_limit(
    client, member, project, budget, openai_simulator
):
    Budget.objects.create(organization=project.organization, amount=Decimal(100), hard_limit=True)
    sim_key(project, openai_simulator)
    client.force_login(member)
    url = f"{INDEX}?project={project.public_id}"

    def count() -> int:
        client.get(url)  # warm: session and per-process caches
        with CaptureQueriesContext(connection) as queries:
            assert client.get(url).status_code == 200
        return len(queries)

    def grow(n: int) -> None:  # open reservations and recorded calls
        for _ in range(n):
            BudgetReservation.objects.create(
                budget=budget,
                period=period_label(project),
                amount=Decimal("0.01"),
                expires_at=FAR_AHEAD,
            )
            generate(api_key=sim_key(project, openai_simulator), project=project, params=params())

    grow(1)
    small = count()
    grow(9)
    # 8 without a budget, + the organization's daily-rollup zone + its spend by project
    # (both budgets at once; the month starts on a UTC hour here, so rollups alone) + the
    # open reservations of both
    assert (small, count()) == (11, 11)


@pytest.mark.django_db(transaction=True)
def test_under_asgi_a_streamed_call_settles_its_reservation(
    member, project, budget, openai_simulator
):
    """The async stream path (AsyncOpenAI, the database work in sync_to_async) reserves
    and settles like the sync one."""
    key = sim_key(project, openai_simulator)

    async def go():
        client = AsyncClient()
        await client.aforce_login(member)
        response = await client.post(reverse("playground:stream"), form_data(project, key))
        chunks = [chunk async for chunk in response.streaming_content]
        await sync_to_async(connections.close_all)()  # the executor thread's connection
        return chunks

    events = [json.loads(chunk) for chunk in asyncio.run(go())]
    assert events[-1]["type"] == "done" and events[-1]["ok"]
    assert 'id="budget-result"' in events[-1]["html"]
    record = UsageRecord.objects.get(project=project)
    reservation = only_reservation()
    assert reservation.amount == worst(200) and reservation.settled_at is not None
    assert record.cost < reservation.amount
