"""Money stored exactly on every database: whole units of 1e-10 USD in a BIGINT.

SQLite has no decimal type: Django stores a ``DecimalField`` there as REAL, so costs
were stored, added (``cost = cost + excluded.cost``) and summed (``SUM(cost)``) in
binary floating point, and a rollup drifted from the sum of its records. An integer
count of a fixed small unit is exact on SQLite and PostgreSQL alike, and so is every
``+`` and ``SUM`` the database does on it. Python code only ever sees ``Decimal``: the
field converts at the edge (``get_prep_value`` on the way in, ``from_db_value`` on the
way out, including for ``Sum("cost")``, whose output field is this field).

This module is the one definition of the unit: the cost engine rounds to
``MONEY_QUANTUM`` with ``MONEY_ROUNDING``, the hand-written ingestion SQL converts with
``money_to_units``, and the migration that moved the old columns multiplies by
``UNITS_PER_DOLLAR``.
"""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Any

from django import forms
from django.core import exceptions
from django.db import models

MONEY_DECIMAL_PLACES = 10
MONEY_QUANTUM = Decimal(1).scaleb(-MONEY_DECIMAL_PLACES)  # 1e-10 USD, the stored unit
UNITS_PER_DOLLAR = 10**MONEY_DECIMAL_PLACES
# The rounding of a cost to the unit: the one Django's DecimalField applied before
# (its context's default, half-even), so a record costs what it cost before the move.
MONEY_ROUNDING = ROUND_HALF_EVEN
MAX_UNITS = 2**63 - 1  # a signed 64-bit integer: BIGINT on PostgreSQL, INTEGER on SQLite
MAX_AMOUNT = Decimal(MAX_UNITS).scaleb(-MONEY_DECIMAL_PLACES)  # ≈ $922 million


def quantize_money(amount: Decimal) -> Decimal:
    """``amount`` rounded to the stored unit (1e-10 USD), half to even."""
    return amount.quantize(MONEY_QUANTUM, rounding=MONEY_ROUNDING)


def money_to_units(amount: Decimal | int) -> int:
    """Whole units of 1e-10 USD for an amount; rounded half to even, range-checked."""
    if isinstance(amount, float) or not isinstance(amount, (Decimal, int)):
        raise TypeError(
            f"A money amount must be a Decimal (or int), not {type(amount).__name__}: "
            "floats cannot hold cents exactly; pass Decimal(str(value))."
        )
    if isinstance(amount, Decimal) and not amount.is_finite():
        raise ValueError(f"{amount} is not an amount of money; pass a finite Decimal.")
    scaled = Decimal(amount).scaleb(MONEY_DECIMAL_PLACES)
    # Range first: quantizing a huge value would raise InvalidOperation instead.
    units = (
        int(scaled.quantize(Decimal(1), rounding=MONEY_ROUNDING))
        if abs(scaled) <= MAX_UNITS + 1
        else None
    )
    if units is None or not -MAX_UNITS - 1 <= units <= MAX_UNITS:
        raise ValueError(
            f"The amount {amount} USD is outside what a money column holds "
            f"(±{MAX_AMOUNT} USD); check the token counts and the price."
        )
    return units


def units_to_money(units: int | Decimal) -> Decimal:
    """The Decimal amount (10 decimal places) of a count of 1e-10 USD units."""
    return Decimal(units).scaleb(-MONEY_DECIMAL_PLACES)


class MoneyField(models.BigIntegerField):
    """An amount in USD: ``Decimal`` in Python, whole 1e-10 USD units in the database.

    Lookups (``cost__gte=0``), ``F()`` arithmetic on other money columns and ``Sum``
    work on the integers; ``Sum("cost")`` comes back as ``Decimal`` through
    ``from_db_value`` (PostgreSQL returns ``SUM(bigint)`` as numeric, SQLite as integer:
    both exact).
    """

    description = "Amount in USD, stored as integer units of 1e-10 USD"
    default_error_messages = {
        "invalid": "“%(value)s” is not an amount: write a decimal number such as 12.50.",
        "out_of_range": "Enter an amount between -%(limit)s and %(limit)s USD.",
    }

    @property
    def validators(self) -> list:
        # Not IntegerField's: its range checks compare units with the dollar value.
        return [*self.default_validators, *self._validators, self._validate_range]

    def _validate_range(self, value: Decimal) -> None:
        if value is not None and abs(value) > MAX_AMOUNT:
            raise exceptions.ValidationError(
                self.error_messages["out_of_range"],
                code="out_of_range",
                params={"limit": MAX_AMOUNT},
            )

    def to_python(self, value: Any) -> Decimal | None:
        if value is None or (isinstance(value, Decimal) and value.is_finite()):
            return value
        if isinstance(value, float):
            raise exceptions.ValidationError(
                self.error_messages["invalid"], code="invalid", params={"value": value}
            )
        try:
            amount = Decimal(str(value).strip() if isinstance(value, str) else value)
        except (InvalidOperation, TypeError, ValueError) as exc:
            raise exceptions.ValidationError(
                self.error_messages["invalid"], code="invalid", params={"value": value}
            ) from exc
        if not amount.is_finite():
            raise exceptions.ValidationError(
                self.error_messages["invalid"], code="invalid", params={"value": value}
            )
        return amount

    def from_db_value(self, value: Any, expression, connection) -> Decimal | None:
        if value is None:
            return None
        if isinstance(value, float):
            # A REAL here means something summed or divided outside this field: refuse
            # rather than hand back an inexact amount.
            raise TypeError(
                f"{self.model.__name__}.{self.name}: the database returned a float; money "
                "columns hold integer units, so the expression that produced it is wrong."
            )
        return units_to_money(value)

    def get_prep_value(self, value: Any) -> int | None:
        value = models.Field.get_prep_value(self, value)  # not int(): the value is dollars
        if value is None:
            return None
        if isinstance(value, str):
            value = self.to_python(value)
        try:
            return money_to_units(value)
        except (TypeError, ValueError) as exc:
            raise exc.__class__(f"Field '{self.name}': {exc}") from exc

    def formfield(self, **kwargs):
        return models.Field.formfield(
            self,
            **{
                "form_class": forms.DecimalField,
                "decimal_places": MONEY_DECIMAL_PLACES,
                "max_value": MAX_AMOUNT,
                "min_value": -MAX_AMOUNT,
                **kwargs,
            },
        )
