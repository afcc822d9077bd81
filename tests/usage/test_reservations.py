"""usage.reservations: worst case, reserve against spend + open reservations, settle, expiry,
fail closed. On the test database (SQLite by default, PostgreSQL in CI)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import time_machine
from django.db import connection

from tests.factories import OrganizationFactory, ProjectFactory
from usage.models import Budget, BudgetReservation, CatalogModel, ModelPrice, UsageHourly
from usage.reservations import (
    INPUT_OVERHEAD_TOKENS,
    budget_period,
    budget_reservation_settle,
    budget_reserve,
    budget_reserved,
    budget_rooms,
    worst_case_cost,
)
from usage.services import usage_record_create

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 12, 15, 12, 0, tzinfo=UTC)
MODEL = "gpt-5.4-mini"  # 0.75 input / 4.50 output per 1M tokens in the seed


@pytest.fixture(autouse=True)
def _frozen():
    with time_machine.travel(NOW, tick=False):
        yield


def hard_budget(project=None, *, organization=None, amount="1.00", **kw) -> Budget:
    organization = organization or project.organization
    kw.setdefault("hard_limit", True)
    return Budget.objects.create(
        organization=organization, project=project, amount=Decimal(amount), **kw
    )


def spend(project, dollars: str, *, when=None, model=MODEL, source="ingest", rid=None):
    """Record usage that costs exactly ``dollars`` (output tokens at $4.50 / 1M)."""
    tokens = Decimal(dollars) * 1_000_000 / Decimal("4.50")
    assert tokens == tokens.to_integral_value(), "pick an amount that is whole tokens"
    record, _ = usage_record_create(
        project=project,
        source=source,
        model=model,
        response_id=rid,
        occurred_at=(when or NOW - timedelta(hours=1)).isoformat(),
        usage={"input_tokens": 0, "output_tokens": int(tokens), "total_tokens": int(tokens)},
    )
    return record


def test_the_worst_case_bounds_input_by_bytes_and_output_by_the_cap(project):
    cost = worst_case_cost(project=project, model=MODEL, prompt_bytes=100, max_output_tokens=1000)
    input_tokens = 100 + INPUT_OVERHEAD_TOKENS
    assert cost == (Decimal(input_tokens) * Decimal("0.75") + 1000 * Decimal("4.50")) / 1_000_000


def test_the_worst_case_uses_the_organizations_negotiated_price(project):
    ModelPrice.objects.create(
        model=CatalogModel.objects.get(model_id=MODEL),
        organization=project.organization,
        effective_from=NOW.date() - timedelta(days=1),
        input_per_mtok=Decimal("1"),
        output_per_mtok=Decimal("2"),
    )
    cost = worst_case_cost(project=project, model=MODEL, prompt_bytes=0, max_output_tokens=1000)
    assert cost == (Decimal(INPUT_OVERHEAD_TOKENS) * 1 + 1000 * 2) / Decimal(1_000_000)


def test_a_model_with_no_price_has_no_worst_case(project):
    assert (
        worst_case_cost(
            project=project, model="no-such-model", prompt_bytes=10, max_output_tokens=1
        )
        is None
    )


def test_with_no_hard_limit_budget_nothing_is_reserved(project):
    hard_budget(project, hard_limit=False)  # alerts only
    hard_budget(ProjectFactory(organization=project.organization))  # another project's
    hard_budget(project=None, organization=OrganizationFactory(), amount="5")  # another org
    result = budget_reserve(project=project, amount=Decimal("100"))
    assert result.allowed and result.reservation_ids == () and result.binding is None
    assert not BudgetReservation.objects.exists()


def test_a_call_is_held_against_the_projects_and_the_organizations_budget(project):
    own = hard_budget(project, amount="2.00")
    org = hard_budget(organization=project.organization, amount="10.00")
    spend(project, "0.90")
    result = budget_reserve(project=project, amount=Decimal("0.50"))
    assert result.allowed
    rows = BudgetReservation.objects.order_by("budget_id")
    assert [(r.budget_id, r.period, r.amount) for r in rows] == [
        (own.pk, "2026-12", Decimal("0.50")),
        (org.pk, "2026-12", Decimal("0.50")),
    ]
    assert rows[0].expires_at == NOW + timedelta(seconds=900)
    assert set(result.reservation_ids) == {r.pk for r in rows}
    assert result.budget == own  # the one with least left
    assert (result.spend, result.reserved, result.remaining) == (
        Decimal("0.90"),
        Decimal(0),
        Decimal("1.10"),
    )


def test_spend_plus_reservations_plus_the_call_over_the_amount_is_refused(project):
    budget = hard_budget(project, amount="50.00")
    spend(project, "49.05")
    spend(project, "0.09", rid="resp_2")
    first = budget_reserve(project=project, amount=Decimal("0.40"))
    assert first.allowed
    refused = budget_reserve(project=project, amount=Decimal("1.20"))
    assert not refused.allowed and refused.error_type == "BudgetExceeded"
    assert refused.message == (
        "Budget of Production for 2026-12: $49.14 spent + $0.40 reserved of $50.00; "
        "this call could cost up to $1.20. Raise the budget or lower max output tokens."
    )
    assert refused.budget == budget and refused.remaining == Decimal("0.46")
    assert BudgetReservation.objects.count() == 1  # nothing written on a refusal
    assert budget_reserve(project=project, amount=Decimal("0.46")).allowed  # exactly fits


def test_the_organizations_budget_refuses_for_all_its_projects(project):
    other = ProjectFactory(organization=project.organization, name="Research")
    hard_budget(organization=project.organization, amount="1.00")
    spend(other, "0.90")
    refused = budget_reserve(project=project, amount=Decimal("0.20"))
    assert not refused.allowed
    assert refused.message.startswith("Budget of Acme for 2026-12: $0.90 spent + $0.00 reserved")


def test_settling_stops_a_reservation_counting_and_is_idempotent(project):
    budget = hard_budget(project, amount="1.00")
    held = budget_reserve(project=project, amount=Decimal("0.80"))
    assert budget_reserved(budget=budget, period="2026-12") == Decimal("0.80")
    assert not budget_reserve(project=project, amount=Decimal("0.30")).allowed
    assert budget_reservation_settle(reservation_ids=held.reservation_ids) == 1
    assert budget_reservation_settle(reservation_ids=held.reservation_ids) == 0
    assert budget_reserved(budget=budget, period="2026-12") == Decimal(0)
    assert budget_reserve(project=project, amount=Decimal("0.30")).allowed


def test_an_expired_reservation_no_longer_counts(project, settings):
    settings.BUDGET_RESERVATION_TTL_SECONDS = 60
    project.request_timeout_seconds, project.max_retries = 1, 0  # 1 s x 1 + 60 s: 61 s
    hard_budget(project, amount="1.00")
    budget_reserve(project=project, amount=Decimal("0.80"))  # its process dies mid-call
    assert not budget_reserve(project=project, amount=Decimal("0.30")).allowed
    with time_machine.travel(NOW + timedelta(seconds=60), tick=False):
        assert not budget_reserve(project=project, amount=Decimal("0.30")).allowed
    with time_machine.travel(NOW + timedelta(seconds=61), tick=False):
        assert budget_reserve(project=project, amount=Decimal("0.30")).allowed


def test_a_project_with_long_timeouts_holds_its_reservation_longer(project, settings):
    settings.BUDGET_RESERVATION_TTL_SECONDS = 60
    project.request_timeout_seconds, project.max_retries = 600, 2
    hard_budget(project)
    budget_reserve(project=project, amount=Decimal("0.10"))
    assert BudgetReservation.objects.get().expires_at == NOW + timedelta(seconds=600 * 3 + 60)


def test_ingested_usage_trips_the_limit_for_the_consoles_calls(project):
    hard_budget(project, amount="1.00")
    spend(project, "1.08", source="ingest")  # reported by an application: cannot be stopped
    refused = budget_reserve(project=project, amount=Decimal("0.0001"))
    assert not refused.allowed
    assert "$1.08 spent + $0.00 reserved of $1.00" in refused.message
    assert refused.message.endswith("The budget is used up: raise it, or wait for the next period.")


def test_unpriced_calls_are_named_in_the_refusal(project):
    hard_budget(project, amount="1.00")
    spend(project, "0.99")
    usage_record_create(
        project=project,
        source="ingest",
        model="no-such-model",
        occurred_at=(NOW - timedelta(hours=2)).isoformat(),
        usage={"input_tokens": 10, "output_tokens": 10, "total_tokens": 20},
    )
    refused = budget_reserve(project=project, amount=Decimal("0.02"))
    assert "$0.99 spent (+ 1 unpriced calls not counted) + $0.00 reserved" in refused.message


def test_only_this_periods_spend_and_reservations_count_in_the_billing_timezone(project):
    organization = project.organization
    organization.billing_timezone = "Asia/Tokyo"  # UTC+9: December began 2026-11-30 15:00 UTC
    organization.save()
    budget = hard_budget(project, amount="1.00")
    spend(project, "0.45", when=datetime(2026, 11, 30, 14, 59, tzinfo=UTC))  # November there
    spend(project, "0.36", when=datetime(2026, 11, 30, 15, 0, tzinfo=UTC), rid="resp_dec")
    BudgetReservation.objects.create(
        budget=budget, period="2026-11", amount=Decimal("0.50"), expires_at=NOW + timedelta(1)
    )
    period = budget_period(organization=organization, now=NOW)
    assert (period.start, period.end, period.label) == (
        datetime(2026, 11, 30, 15, tzinfo=UTC),
        datetime(2026, 12, 31, 15, tzinfo=UTC),
        "2026-12",
    )
    [room] = budget_rooms(project=project)
    assert (room.period, room.spend, room.reserved) == ("2026-12", Decimal("0.36"), Decimal(0))


def test_a_call_that_finished_with_a_later_clock_still_counts(project):
    """A call settles as soon as its record is written; the record's time comes from the
    upstream's clock. Spend is read over the whole period, so a record stamped after this
    call's ``now`` is counted, not lost between settled and not yet spent."""
    hard_budget(project, amount="1.00")
    spend(project, "0.90", when=NOW + timedelta(seconds=30))
    assert not budget_reserve(project=project, amount=Decimal("0.20")).allowed


@pytest.fixture
def table_renamed():
    """Rename a table the hard limit reads, so reading it raises a real DatabaseError."""
    renamed = []

    def rename(model):
        table = model._meta.db_table
        quote = connection.ops.quote_name
        with connection.cursor() as cursor:
            cursor.execute(f"ALTER TABLE {quote(table)} RENAME TO {quote(table + '_gone')}")
        renamed.append(table)

    yield rename
    quote = connection.ops.quote_name
    for table in renamed:
        with connection.cursor() as cursor:
            cursor.execute(f"ALTER TABLE {quote(table + '_gone')} RENAME TO {quote(table)}")


@pytest.mark.parametrize("model", [BudgetReservation, UsageHourly])
def test_when_the_budget_state_cannot_be_read_the_call_is_refused(project, table_renamed, model):
    hard_budget(project, amount="100.00")
    table_renamed(model)
    result = budget_reserve(project=project, amount=Decimal("0.01"))
    assert not result.allowed and result.error_type == "BudgetUnavailable"
    assert result.message.startswith("The hard-limit budget of Production could not be read")
    assert "refused and not sent" in result.message
    assert "_gone" not in result.message and "SELECT" not in result.message  # no SQL shown


def test_a_refusal_while_calls_in_flight_hold_the_rest_says_so(project):
    hard_budget(project, amount="1.00")
    spend(project, "0.18")
    assert budget_reserve(project=project, amount=Decimal("0.82")).allowed
    refused = budget_reserve(project=project, amount=Decimal("0.01"))
    assert refused.message == (
        "Budget of Production for 2026-12: $0.18 spent + $0.82 reserved of $1.00; this call "
        "could cost up to $0.01. Calls in flight hold the rest: try again when they finish, "
        "or raise the budget."
    )
