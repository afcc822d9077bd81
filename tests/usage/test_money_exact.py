"""Money is exact on every database: thousands of records ingested, every total == the
Decimal sum of the records' costs computed here from the catalog prices.

SQLite has no decimal type; before costs were integer units (usage.fields.MoneyField)
they were stored and summed as REAL and the totals drifted from the records.
"""

from __future__ import annotations

import json
import random
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from io import StringIO

import pytest
import time_machine
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.forms import modelform_factory

from tests.factories import ProjectFactory, make_api_key
from usage.fields import MAX_AMOUNT, MoneyField, money_to_units, units_to_money
from usage.models import CatalogModel, ModelPrice, UsageHourly, UsageRecord
from usage.parsing import FieldError
from usage.pricing import PriceBook
from usage.selectors import (
    organization_spend_month_to_date,
    organization_spend_summary,
    project_spend_month_to_date,
    project_usage_summary,
)
from usage.services import (
    build_record,
    ingestion_token_create,
    usage_record_create,
    usage_records_ingest,
)

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 7, 15, 1, 30, tzinfo=UTC)
FIRST_HOUR = datetime(2026, 7, 14, 23, tzinfo=UTC)  # 23:00 to 01:29: across midnight
D = Decimal
# Prices per 1M tokens that give long decimals: (input, cached input, output) from a date.
LIST = {
    "h-long-a": [
        (date(2026, 1, 1), D("1.234567"), D("0.123457"), D("9.876543")),
        (date(2026, 7, 15), D("1.111113"), D("0.011117"), D("7.777779")),
    ],
    "h-long-b": [(date(2026, 1, 1), D("0.333333"), None, D("1.666667"))],
}
NEGOTIATED = {"h-long-b": [(date(2026, 7, 15), D("0.314159"), D("0.031416"), D("2.718281"))]}
PRIORITY = {"h-long-a": D("1.75"), "h-long-b": None}
MODELS = ["h-long-a", "h-long-b", "h-unknown"]
TIERS = ["default", "auto", "flex", "batch", "priority", "scale"]


def _in_force(rows, day):
    rows = [r for r in rows if r[0] <= day]
    return max(rows, key=lambda r: r[0]) if rows else None


def expected_cost(
    model: str, tier: str, inp: int, cached: int, out: int, when: datetime
) -> Decimal | None:
    """The cost written out independently of usage.pricing, from the prices above."""
    if not (inp or out):
        return D("0")
    price = _in_force(NEGOTIATED.get(model, []), when.date()) or _in_force(
        LIST.get(model, []), when.date()
    )
    if price is None:
        return None
    _, p_in, p_cached, p_out = price
    factor = {"flex": D("0.5"), "batch": D("0.5"), "priority": PRIORITY.get(model)}.get(tier, D(1))
    if factor is None:
        return None
    amount = (
        (inp - cached) * p_in + cached * (p_cached if p_cached is not None else p_in) + out * p_out
    )
    return (amount / 1_000_000 * factor).quantize(D("1e-10"), rounding=ROUND_HALF_EVEN)


@pytest.fixture
def catalog(organization):
    for model_id in ("h-long-a", "h-long-b"):
        model = CatalogModel.objects.create(
            model_id=model_id, priority_multiplier=PRIORITY[model_id]
        )
        for eff, p_in, p_cached, p_out in LIST[model_id]:
            ModelPrice.objects.create(
                model=model,
                effective_from=eff,
                input_per_mtok=p_in,
                cached_input_per_mtok=p_cached,
                output_per_mtok=p_out,
            )
        for eff, p_in, p_cached, p_out in NEGOTIATED.get(model_id, []):
            ModelPrice.objects.create(
                model=model,
                organization=organization,
                effective_from=eff,
                input_per_mtok=p_in,
                cached_input_per_mtok=p_cached,
                output_per_mtok=p_out,
            )


def _synthetic(rng: random.Random, n: int, prefix: str) -> list[dict]:
    out = []
    span = int((NOW - FIRST_HOUR).total_seconds())
    for i in range(n):
        inp = rng.randint(0, 3_000) if i % 50 else 0  # every 50th: an error, no tokens
        cached = rng.randint(0, inp)
        out.append(
            {
                "id": f"{prefix}_{i}",
                "model": rng.choice(MODELS),
                "tier": rng.choice(TIERS),
                "inp": inp,
                "cached": cached,
                "out": rng.randint(1, 800) if inp else 0,
                "when": FIRST_HOUR + timedelta(seconds=rng.randrange(span)),
            }
        )
    return out


def _as_response(r: dict) -> dict:
    if not r["inp"]:
        return {
            "response_id": r["id"],
            "model": r["model"],
            "status": "error",
            "error_type": "rate_limit_exceeded",
            "occurred_at": r["when"].isoformat(),
        }
    return {
        "id": r["id"],
        "object": "response",
        "created_at": r["when"].timestamp(),
        "status": "completed",
        "model": r["model"],
        "output": [],
        "service_tier": r["tier"],
        "usage": {
            "input_tokens": r["inp"],
            "input_tokens_details": {"cached_tokens": r["cached"]},
            "output_tokens": r["out"],
            "output_tokens_details": {"reasoning_tokens": r["out"] // 3},
            "total_tokens": r["inp"] + r["out"],
        },
    }


def _record_one(project, api_key, r: dict) -> None:
    if not r["inp"]:
        usage_record_create(
            project=project,
            api_key=api_key,
            source="playground",
            model=r["model"],
            response_id=r["id"],
            status="error",
            error_type="rate_limit_exceeded",
            occurred_at=r["when"].isoformat(),
        )
    else:
        usage_record_create(
            project=project, api_key=api_key, source="playground", response=_as_response(r)
        )


def _post(client, token: str, records: list[dict]) -> None:
    for i in range(0, len(records), 500):
        body = {"records": [_as_response(r) for r in records[i : i + 500]]}
        resp = client.post(
            "/api/v1/usage",
            data=json.dumps(body),
            content_type="application/json",
            HTTP_AUTHORIZATION=f"Bearer {token}",
        )
        assert resp.status_code == 200, resp.content


def test_every_rollup_and_total_equals_the_sum_of_the_records(
    client, settings, organization, project, api_key, owner, catalog
):
    settings.USAGE_RAW_RETENTION_DAYS = 0
    settings.USAGE_INGEST_RATE_PER_MINUTE = 0
    # A :30 billing offset: month-to-date sums raw records at its partial hours too.
    organization.billing_timezone = "Asia/Kolkata"
    organization.save(update_fields=["billing_timezone"])
    second = ProjectFactory(organization=organization)
    other_key = make_api_key(project)
    rng = random.Random(20261201)
    # (project, key or None) -> records; 3,000 in all.
    batches = {
        (project, None): _synthetic(rng, 1200, "p1"),
        (second, None): _synthetic(rng, 600, "p2"),
        (project, api_key): _synthetic(rng, 700, "k1"),
        (project, other_key): _synthetic(rng, 500, "k2"),
    }
    with time_machine.travel(NOW, tick=False):
        for (proj, key), records in batches.items():
            if key is None:  # the ingestion API, as applications report
                _, token = ingestion_token_create(project=proj, name="exactness")
                _post(client, token, records)
                _post(client, token, records[:100])  # a replay changes nothing
            else:  # one write per call, as the playground records them, with a key
                for r in records:
                    _record_one(proj, key, r)

    expected_records: dict[str, Decimal | None] = {}
    buckets: dict[tuple, list] = defaultdict(lambda: [D(0), 0, 0])  # cost, requests, unpriced
    per_project: dict[int, Decimal] = defaultdict(D)
    per_model: dict[tuple, Decimal] = defaultdict(D)
    for (proj, key), records in batches.items():
        for r in records:
            cost = expected_cost(r["model"], r["tier"], r["inp"], r["cached"], r["out"], r["when"])
            expected_records[r["id"]] = cost
            b = buckets[
                (proj.pk, key.pk if key else 0, r["model"], r["when"].replace(minute=0, second=0))
            ]
            b[1] += 1
            if cost is None:
                b[2] += 1
            else:
                b[0] += cost
                per_project[proj.pk] += cost
                per_model[(proj.pk, r["model"])] += cost
    assert len(expected_records) == 3000
    assert sum(v is None for v in expected_records.values()) > 100, (
        "unpriced records are part of the test"
    )
    assert len(buckets) >= 30

    # Every record, as stored.
    stored = dict(UsageRecord.objects.values_list("response_id", "cost"))
    assert stored == expected_records
    assert all(type(v) is D for v in stored.values() if v is not None)
    # The column holds integer units (no REAL on SQLite).
    rid = next(k for k, v in expected_records.items() if v)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT cost FROM {UsageRecord._meta.db_table} WHERE response_id = %s", [rid]
        )
        (raw,) = cursor.fetchone()
    assert type(raw) is int and raw == expected_records[rid] * 10**10

    # Every hourly rollup.
    rollups = {
        (h.project_id, h.key_slot, h.model, h.hour): [h.cost, h.requests, h.unpriced_requests]
        for h in UsageHourly.objects.all()
    }
    assert rollups == dict(buckets)

    # Per project (rollups), per model, month to date (rollups + raw edges), organization.
    since = FIRST_HOUR - timedelta(days=1)
    for proj in (project, second):
        summary = project_usage_summary(project=proj, since=since, until=NOW)
        assert summary.totals["cost"] == per_project[proj.pk] and type(summary.totals["cost"]) is D
        assert {m["model"]: m["cost"] for m in summary.by_model} == {
            model: per_model[(proj.pk, model)] for model in MODELS
        }
        assert project_spend_month_to_date(project=proj, now=NOW).cost == per_project[proj.pk]
    total = per_project[project.pk] + per_project[second.pk]
    assert organization_spend_month_to_date(organization=organization, now=NOW) == total
    summary = organization_spend_summary(organization=organization, now=NOW)
    assert summary.requests == 3000
    assert summary.unpriced_requests == sum(v is None for v in expected_records.values())

    out = StringIO()
    call_command("check_rollups", stdout=out)
    assert "Rollups match the raw records" in out.getvalue()


def test_prices_with_long_decimals_come_back_exact(organization, catalog):
    """Prices stay DecimalField (REAL on SQLite): fine because each is read alone."""
    book = PriceBook(organization_id=organization.pk, model_ids=["h-long-a", "h-long-b"])
    price = book.price_for("h-long-a", datetime(2026, 7, 14, 23, tzinfo=UTC))
    assert (price.input, price.cached_input, price.output) == LIST["h-long-a"][0][1:]
    price = book.price_for("h-long-b", datetime(2026, 7, 15, 1, tzinfo=UTC))
    assert (
        price.negotiated
        and (price.input, price.cached_input, price.output) == NEGOTIATED["h-long-b"][0][1:]
    )
    assert book._multipliers["h-long-a"] == D("1.75")
    # The largest price a column accepts round-trips too (12 digits < SQLite's 15).
    ModelPrice.objects.filter(model__model_id="h-long-b").update(output_per_mtok=D("999999.999999"))
    assert ModelPrice.objects.filter(model__model_id="h-long-b").first().output_per_mtok == D(
        "999999.999999"
    )


def test_a_record_rounds_to_the_unit_half_to_even(project, catalog):
    """Half a unit (1e-10 USD) goes to the even neighbour, as the DecimalField did: 5, 15
    and 25 tokens at $0.00001 / 1M are 0.5, 1.5 and 2.5 units -> 0, 2, 2."""
    model = CatalogModel.objects.get(model_id="h-long-a")
    ModelPrice.objects.create(
        model=model,
        effective_from=date(2026, 7, 1),
        input_per_mtok=D("0.000010"),
        cached_input_per_mtok=D("0.000010"),
        output_per_mtok=D("0.000010"),
    )
    when = datetime(2026, 7, 1, 12, tzinfo=UTC)
    costs = []
    for n, tokens in enumerate((5, 15, 25, 1)):  # 0.5, 1.5, 2.5, 0.1 units of 1e-10
        record, _ = usage_record_create(
            project=project,
            source="ingest",
            model="h-long-a",
            response_id=f"round_{n}",
            occurred_at=when.isoformat(),
            usage={"input_tokens": tokens, "output_tokens": 0, "total_tokens": tokens},
        )
        costs.append(record.cost)
    assert costs == [D("0E-10"), D("2E-10"), D("2E-10"), D("0E-10")]
    assert UsageHourly.objects.get().cost == D("4E-10")


def test_a_cost_too_large_to_store_is_refused_by_name(project, catalog):
    model = CatalogModel.objects.get(model_id="h-long-a")
    ModelPrice.objects.create(
        model=model,
        effective_from=date(2026, 7, 1),
        input_per_mtok=D("999999"),
        output_per_mtok=D("999999"),
    )
    with pytest.raises(ValidationError) as exc:
        usage_record_create(
            project=project,
            source="ingest",
            model="h-long-a",
            response_id="huge",
            occurred_at="2026-07-01T12:00:00Z",
            usage={"input_tokens": 10**12, "output_tokens": 0, "total_tokens": 10**12},
        )
    assert "usage" in exc.value.message_dict and "check the token counts" in str(exc.value)
    assert not UsageRecord.objects.exists() and not UsageHourly.objects.exists()
    with pytest.raises(FieldError):
        usage_records_ingest(
            project=project,
            drafts=[
                build_record(
                    project=project,
                    source="ingest",
                    model="h-long-a",
                    response_id="huge2",
                    occurred_at="2026-07-01T13:00:00Z",
                    usage={"input_tokens": 10**12, "output_tokens": 0, "total_tokens": 10**12},
                )
            ],
        )


def test_the_money_field_converts_at_the_edges():
    field = MoneyField()
    field.name = "cost"
    assert field.get_prep_value(D("0.0859500000")) == 859_500_000
    assert field.get_prep_value("12.5") == 125_000_000_000
    assert field.get_prep_value(0) == 0 and field.get_prep_value(None) is None
    assert units_to_money(859_500_000) == D("0.0859500000")
    assert money_to_units(MAX_AMOUNT) == 2**63 - 1
    with pytest.raises(TypeError, match="Decimal"):
        field.get_prep_value(0.1)
    with pytest.raises(ValueError, match="outside"):
        field.get_prep_value(MAX_AMOUNT + 1)
    with pytest.raises(ValueError, match="outside"):
        field.get_prep_value(D("1E+40"))
    with pytest.raises(ValidationError):
        field.clean(MAX_AMOUNT + 1, None)
    with pytest.raises(ValidationError):
        field.clean("NaN", None)
    with pytest.raises(ValueError, match="finite"):
        field.get_prep_value(D("Infinity"))
    assert field.clean("3.1415926535", None) == D("3.1415926535")
    assert field.formfield().clean("0.0000000001") == D("1E-10")


@pytest.mark.django_db(transaction=True)
def test_the_migration_converts_existing_costs_both_ways(project):
    """Rows written under 0003 (DecimalField: REAL on SQLite) keep their amounts, exactly."""
    before = [("usage", "0003_usage_records")]
    executor = MigrationExecutor(connection)
    executor.migrate(before)
    old = executor.loader.project_state(before).apps
    OldRecord, OldHourly = (
        old.get_model("usage", "UsageRecord"),
        old.get_model("usage", "UsageHourly"),
    )
    common = {
        "organization_id": project.organization_id,
        "project_id": project.pk,
        "source": "ingest",
        "model": "gpt-5.5",
        "occurred_at": datetime(2026, 7, 1, 12, tzinfo=UTC),
        "write_batch": "00000000-0000-0000-0000-000000000001",
    }
    OldRecord.objects.create(response_id="a", cost=D("0.0191000000"), **common)
    OldRecord.objects.create(response_id="b", cost=D("123.4567891234"), **common)
    OldRecord.objects.create(response_id="c", cost=None, **common)
    OldHourly.objects.create(
        hour=datetime(2026, 7, 1, 12, tzinfo=UTC),
        organization_id=project.organization_id,
        project_id=project.pk,
        model="gpt-5.5",
        requests=3,
        cost=D("123.4758891234"),
    )
    if connection.vendor == "sqlite":  # what REAL additions left behind
        with connection.cursor() as cursor:
            cursor.execute(
                f"UPDATE {OldHourly._meta.db_table} SET cost = cost + 0.0000000000000003"
            )

    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())
    assert dict(UsageRecord.objects.values_list("response_id", "cost")) == {
        "a": D("0.0191"),
        "b": D("123.4567891234"),
        "c": None,
    }
    assert UsageHourly.objects.get().cost == D("123.4758891234")
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT cost FROM {UsageHourly._meta.db_table}")
        assert cursor.fetchone()[0] == 1_234_758_891_234

    executor = MigrationExecutor(connection)
    executor.migrate(before)  # and back: the old column gets the same amounts
    old = MigrationExecutor(connection).loader.project_state(before).apps
    assert dict(
        old.get_model("usage", "UsageRecord").objects.values_list("response_id", "cost")
    ) == {"a": D("0.0191"), "b": D("123.4567891234"), "c": None}
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())


def test_a_rollup_past_the_largest_amount_is_refused_not_stored_inexactly(project, catalog):
    """Each record fits, the hour's sum would not: SQLite would silently make it REAL."""
    model = CatalogModel.objects.get(model_id="h-long-a")
    ModelPrice.objects.create(
        model=model,
        effective_from=date(2026, 7, 1),
        input_per_mtok=D("400000"),
        output_per_mtok=D("400000"),
    )
    big = {"input_tokens": 10**9, "output_tokens": 0, "total_tokens": 10**9}  # $400M each
    when = "2026-07-01T12:00:00Z"
    for i in range(2):
        usage_record_create(
            project=project,
            source="ingest",
            model="h-long-a",
            response_id=f"big{i}",
            occurred_at=when,
            usage=big,
        )
    assert UsageHourly.objects.get().cost == D("800000000")
    with pytest.raises(ValidationError) as exc:  # a third write: past 922,337,203.68
        usage_record_create(
            project=project,
            source="ingest",
            model="h-long-a",
            response_id="big2",
            occurred_at=when,
            usage=big,
        )
    assert "rollup" in exc.value.message_dict["usage"][0]
    assert UsageHourly.objects.get().cost == D("800000000") and UsageRecord.objects.count() == 2
    with pytest.raises(FieldError, match="rollup"):  # three in one batch: summed before the write
        usage_records_ingest(
            project=project,
            drafts=[
                build_record(
                    project=project,
                    source="ingest",
                    model="h-long-a",
                    response_id=f"batch{i}",
                    occurred_at="2026-07-01T13:00:00Z",
                    usage=big,
                )
                for i in range(3)
            ],
        )
    assert UsageRecord.objects.count() == 2


def test_the_admin_form_takes_and_gives_decimal_amounts(admin_client, project):
    record, _ = usage_record_create(
        project=project,
        source="ingest",
        model="gpt-5.5",
        response_id="adm",
        usage={"input_tokens": 1000, "output_tokens": 0, "total_tokens": 1000},
    )
    page = admin_client.get(f"/admin/usage/usagerecord/{record.pk}/change/")
    assert page.status_code == 200 and 'value="0.0050000000"' in page.content.decode()
    form_class = modelform_factory(UsageRecord, fields=["cost"])
    form = form_class(instance=record, data={"cost": "0.0000000001"})
    assert form.is_valid(), form.errors
    form.save()
    assert UsageRecord.objects.values_list("cost", flat=True).get(pk=record.pk) == D("1E-10")
    with connection.cursor() as cursor:  # stored as one unit, not as a float
        cursor.execute(f"SELECT cost FROM {UsageRecord._meta.db_table} WHERE id = %s", [record.pk])
        assert cursor.fetchone() == (1,)
    too_fine = form_class(instance=record, data={"cost": "0.00000000001"})
    assert not too_fine.is_valid() and "10 decimal places" in str(too_fine.errors["cost"])
