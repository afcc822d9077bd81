"""The cost engine: what one response cost, in Decimal, from the dated catalog prices.

cost = (uncached input × input price + cached input × cached price
        + output (reasoning included) × output price) / 1M × tier factor

- Prices are dated: the price row in force is the newest with ``effective_from`` on or
  before the day (UTC) the response occurred.
- An organization's own price row (a negotiated rate) in force that day wins over the
  list price.
- Service tier: flex and batch at 50%; priority at the model's ``priority_multiplier``;
  default / auto / scale at 100%. An unknown tier, or priority with no multiplier, is
  unpriced rather than guessed.
- Unpriced (cost ``None``) when a price the call needs is unknown: a model not in the
  catalog, or a null price for tokens the call actually used. Never silently $0.
  Cached tokens on a model with no cached-input price are billed at the input price
  (that model has no caching discount), which never under-states spend.
- A call that used no tokens at all (e.g. an error before any response) costs 0.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal

from django.db import connection
from django.db.models import Q

from .db import pg_cursor
from .fields import quantize_money
from .models import CatalogModel, ModelPrice

MILLION = Decimal(1_000_000)
HALF = Decimal("0.5")
STANDARD_TIERS = {"", "default", "auto", "standard", "scale"}
DISCOUNT_TIERS = {"flex": HALF, "batch": HALF}


@dataclass(frozen=True)
class Price:
    """Prices per 1M tokens in force for one model on one day (None: unknown)."""

    effective_from: date
    input: Decimal | None
    cached_input: Decimal | None
    output: Decimal | None
    negotiated: bool = False


@dataclass(frozen=True)
class Usage:
    """Token counts of one response, normalized from any of the SDK's usage shapes."""

    input_tokens: int = 0
    cached_input_tokens: int = 0
    output_tokens: int = 0
    reasoning_tokens: int = 0
    total_tokens: int = 0

    @property
    def is_empty(self) -> bool:
        return not (self.input_tokens or self.output_tokens or self.total_tokens)


def tier_factor(service_tier: str | None, priority_multiplier: Decimal | None) -> Decimal | None:
    """Price factor of a service tier; None when the tier's price is not known."""
    tier = (service_tier or "").strip().lower()
    if tier in STANDARD_TIERS:
        return Decimal(1)
    if tier in DISCOUNT_TIERS:
        return DISCOUNT_TIERS[tier]
    if tier == "priority":
        return priority_multiplier
    return None


def compute_cost(
    usage: Usage,
    price: Price | None,
    *,
    service_tier: str | None = None,
    priority_multiplier: Decimal | None = None,
) -> Decimal | None:
    """Cost of one response in USD, rounded half-even to 1e-10; None when unpriced."""
    if usage.is_empty:
        return quantize_money(Decimal(0))
    if price is None:
        return None
    cached = min(usage.cached_input_tokens, usage.input_tokens)
    uncached = usage.input_tokens - cached
    amount = Decimal(0)
    if usage.input_tokens:
        if price.input is None:
            return None
        cached_price = price.cached_input if price.cached_input is not None else price.input
        amount += uncached * price.input + cached * cached_price
    if usage.output_tokens:
        if price.output is None:
            return None
        amount += usage.output_tokens * price.output
    factor = tier_factor(service_tier, priority_multiplier)
    if factor is None:
        return None
    # Rounded once, here, to the stored unit: the column then holds this value exactly.
    return quantize_money(amount / MILLION * factor)


class PriceBook:
    """Prices of a set of models for one organization, loaded in one query.

    Built once per write (a batch of up to 1,000 records), then looked up in memory.
    """

    def __init__(self, *, organization_id: int | None, model_ids) -> None:
        self.organization_id = organization_id
        self._multipliers: dict[str, Decimal | None] = {}
        # model id -> (sorted dates, prices) for list prices and for the org's own.
        self._list: dict[str, tuple[list[date], list[Price]]] = {}
        self._org: dict[str, tuple[list[date], list[Price]]] = {}
        model_ids = set(model_ids)
        # One query: the price rows with their model's priority multiplier. A model
        # with no price row at all is unpriced whatever its multiplier. Read on every
        # write (never cached), so a price row added a moment ago applies at once.
        if connection.vendor == "postgresql":
            rows = _price_rows_postgresql(organization_id, sorted(model_ids))
        else:
            owner = Q(organization__isnull=True)
            if organization_id is not None:
                owner |= Q(organization_id=organization_id)
            rows = ModelPrice.objects.filter(owner, model__model_id__in=model_ids).values_list(
                "model__model_id",
                "model__priority_multiplier",
                "organization_id",
                "effective_from",
                "input_per_mtok",
                "cached_input_per_mtok",
                "output_per_mtok",
            )
        staged: dict[tuple[str, bool], list[Price]] = {}
        for model_id, multiplier, org_id, eff, inp, cached, out in rows:
            self._multipliers[model_id] = multiplier
            staged.setdefault((model_id, org_id is not None), []).append(
                Price(eff, inp, cached, out, negotiated=org_id is not None)
            )
        for (model_id, negotiated), prices in staged.items():
            prices.sort(key=lambda p: p.effective_from)
            target = self._org if negotiated else self._list
            target[model_id] = ([p.effective_from for p in prices], prices)

    @staticmethod
    def _in_force(table, model_id: str, day: date) -> Price | None:
        entry = table.get(model_id)
        if not entry:
            return None
        dates, prices = entry
        i = bisect.bisect_right(dates, day)
        return prices[i - 1] if i else None

    def price_for(self, model_id: str, when: datetime) -> Price | None:
        """The price in force on the UTC day of ``when``: negotiated first, else list."""
        day = when.astimezone(UTC).date()
        return self._in_force(self._org, model_id, day) or self._in_force(self._list, model_id, day)

    def cost(
        self, *, model_id: str, usage: Usage, when: datetime, service_tier: str | None
    ) -> Decimal | None:
        return compute_cost(
            usage,
            self.price_for(model_id, when),
            service_tier=service_tier,
            priority_multiplier=self._multipliers.get(model_id),
        )


def _price_rows_postgresql(organization_id: int | None, model_ids: list[str]) -> list[tuple]:
    """The same rows as the ORM query, as one prepared statement (the ORM's query
    compilation cost more than the query itself)."""
    price, model = ModelPrice._meta.db_table, CatalogModel._meta.db_table
    sql = (
        "SELECT m.model_id, m.priority_multiplier, p.organization_id, p.effective_from, "
        "p.input_per_mtok, p.cached_input_per_mtok, p.output_per_mtok "
        f"FROM {price} p JOIN {model} m ON m.id = p.model_id "
        "WHERE (p.organization_id IS NULL OR p.organization_id = %s) AND m.model_id = ANY(%s)"
    )
    with connection.wrap_database_errors, pg_cursor() as cursor:
        cursor.execute(sql, [organization_id, model_ids])
        return cursor.fetchall()
