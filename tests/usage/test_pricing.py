"""The cost engine: every catalog model, unpriced ones, dated prices, overrides, tiers."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from usage.models import CatalogModel, ModelPrice
from usage.pricing import PriceBook, Usage, compute_cost
from usage.services import usage_record_create

pytestmark = pytest.mark.django_db

FACTS = json.loads(
    (Path(__file__).resolve().parents[2] / "usage/data/openai-models.json").read_text()
)
WHEN = datetime(2026, 7, 1, 12, tzinfo=UTC)
USAGE = Usage(
    input_tokens=1_000_000,
    cached_input_tokens=400_000,
    output_tokens=200_000,
    reasoning_tokens=50_000,
    total_tokens=1_200_000,
)


def _cost(
    *, organization, model_id: str, usage: Usage, when: datetime, service_tier: str | None = None
) -> Decimal | None:
    """The cost of one record, by the price book the write path uses."""
    book = PriceBook(organization_id=organization.pk, model_ids=[model_id])
    return book.cost(model_id=model_id, usage=usage, when=when, service_tier=service_tier)


def _d(v):
    return None if v is None else Decimal(str(v))


@pytest.mark.parametrize("row", FACTS["models"], ids=lambda r: r["id"])
def test_cost_of_every_catalog_model(organization, row):
    inp, cached, out = _d(row["input"]), _d(row["cached_input"]), _d(row["output"])
    cost = _cost(organization=organization, model_id=row["id"], usage=USAGE, when=WHEN)
    if inp is None or out is None:
        assert cost is None, "a model with no published price is unpriced, never $0"
    else:
        expected = (
            Decimal(600_000) * inp
            + Decimal(400_000) * (cached if cached is not None else inp)
            + Decimal(200_000) * out
        ) / Decimal(1_000_000)
        assert cost == expected


def test_embeddings_use_only_input_price(organization):
    usage = Usage(input_tokens=3_000, total_tokens=3_000)
    cost = _cost(
        organization=organization, model_id="text-embedding-3-large", usage=usage, when=WHEN
    )
    assert cost == Decimal("0.00039")


def test_a_model_outside_the_catalog_is_unpriced(organization, project):
    assert _cost(organization=organization, model_id="gpt-unknown", usage=USAGE, when=WHEN) is None
    record, _ = usage_record_create(
        project=project,
        source="ingest",
        model="gpt-unknown",
        response_id="r1",
        usage={"input_tokens": 10, "output_tokens": 1},
        occurred_at=WHEN,
    )
    assert record.cost is None and record.is_unpriced


def test_no_tokens_costs_nothing_even_unpriced(organization):
    assert _cost(organization=organization, model_id="whisper-1", usage=Usage(), when=WHEN) == 0


def test_a_dated_price_change_applies_from_its_date(organization):
    model = CatalogModel.objects.get(model_id="gpt-5.4")
    ModelPrice.objects.create(
        model=model,
        effective_from=date(2026, 8, 1),
        input_per_mtok=Decimal("2"),
        cached_input_per_mtok=Decimal("0.2"),
        output_per_mtok=Decimal("12"),
    )
    usage = Usage(input_tokens=1_000_000, output_tokens=1_000_000, total_tokens=2_000_000)
    before = _cost(
        organization=organization,
        model_id="gpt-5.4",
        usage=usage,
        when=datetime(2026, 7, 31, 23, 59, tzinfo=UTC),
    )
    after = _cost(
        organization=organization,
        model_id="gpt-5.4",
        usage=usage,
        when=datetime(2026, 8, 1, 0, 0, tzinfo=UTC),
    )
    assert (before, after) == (Decimal("17.5"), Decimal("14"))
    # before the first list price there is no price at all
    assert (
        _cost(
            organization=organization,
            model_id="gpt-5.4",
            usage=usage,
            when=datetime(2026, 1, 1, tzinfo=UTC),
        )
        is None
    )


def test_an_organization_override_wins_for_that_organization_only(organization, other_organization):
    model = CatalogModel.objects.get(model_id="gpt-5.5")
    ModelPrice.objects.create(
        model=model,
        organization=organization,
        effective_from=date(2026, 6, 15),
        input_per_mtok=Decimal("4"),
        cached_input_per_mtok=Decimal("0.4"),
        output_per_mtok=Decimal("24"),
    )
    usage = Usage(input_tokens=1_000_000, output_tokens=1_000_000, total_tokens=2_000_000)
    assert _cost(organization=organization, model_id="gpt-5.5", usage=usage, when=WHEN) == Decimal(
        "28"
    )
    assert _cost(
        organization=other_organization, model_id="gpt-5.5", usage=usage, when=WHEN
    ) == Decimal("35")
    # before the negotiated rate took effect: the list price
    assert _cost(
        organization=organization,
        model_id="gpt-5.5",
        usage=usage,
        when=datetime(2026, 6, 10, tzinfo=UTC),
    ) == Decimal("35")


@pytest.mark.parametrize(
    ("tier", "expected"),
    [
        ("default", Decimal("35")),
        ("auto", Decimal("35")),
        (None, Decimal("35")),
        ("scale", Decimal("35")),
        ("flex", Decimal("17.5")),
        ("batch", Decimal("17.5")),
        ("priority", Decimal("87.5")),
        ("ultrafast", None),
    ],
)
def test_service_tiers(organization, tier, expected):
    usage = Usage(input_tokens=1_000_000, output_tokens=1_000_000, total_tokens=2_000_000)
    assert (
        _cost(
            organization=organization, model_id="gpt-5.5", usage=usage, when=WHEN, service_tier=tier
        )
        == expected
    )


def test_priority_without_a_multiplier_is_unpriced(organization):
    usage = Usage(input_tokens=1000, output_tokens=10, total_tokens=1010)
    assert (
        _cost(
            organization=organization,
            model_id="gpt-4.1",
            usage=usage,
            when=WHEN,
            service_tier="priority",
        )
        is None
    )
    assert _cost(
        organization=organization,
        model_id="gpt-5.4",
        usage=usage,
        when=WHEN,
        service_tier="priority",
    ) == Decimal("0.0053")  # (1000×2.5 + 10×15)/1M × 2


def test_reasoning_tokens_are_billed_as_output_once():
    from usage.pricing import Price

    price = Price(date(2026, 1, 1), Decimal("1"), Decimal("0.1"), Decimal("10"))
    with_reasoning = Usage(input_tokens=0, output_tokens=100, reasoning_tokens=80, total_tokens=100)
    assert compute_cost(with_reasoning, price) == Decimal("0.001")


def test_costs_are_decimal_and_rounded_to_ten_places():
    from usage.pricing import Price

    price = Price(date(2026, 1, 1), Decimal("0.075"), None, Decimal("4.5"))
    cost = compute_cost(
        Usage(input_tokens=1, output_tokens=1, total_tokens=2), price, service_tier="flex"
    )
    assert isinstance(cost, Decimal) and cost == Decimal("0.0000022875")
