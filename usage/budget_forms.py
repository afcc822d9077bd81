"""The budget form: amount in USD, thresholds as "50, 80, 100", hard limit, forecast.

Every refusal names the field and says what to type instead.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

from django import forms

from .fields import MAX_AMOUNT
from .models import default_thresholds

ORGANIZATION_SCOPE = "organization"
MAX_THRESHOLDS = 10
# Dollars and cents: "500", "1250.5", "1,250.50", "$80" (a comma only between thousands).
_AMOUNT = re.compile(r"^\$?\s*(\d{1,3}(,\d{3})+|\d+)(\.\d*)?$")
# Well under the column's maximum (about $922 million), so sums of a year stay storable.
MAX_BUDGET = Decimal(100_000_000)
assert MAX_BUDGET < MAX_AMOUNT


def parse_amount(raw: str) -> Decimal:
    """A positive number of dollars with at most two decimals; ValueError says why."""
    text = (raw or "").strip()
    if not text:
        raise ValueError("Enter the monthly amount in US dollars, e.g. 500 or 1250.50.")
    if not _AMOUNT.match(text):
        raise ValueError(
            f"“{text[:40]}” is not an amount of dollars: use digits and a decimal point, "
            "e.g. 500 or 1250.50 (no minus sign, no other currency)."
        )
    try:
        amount = Decimal(text.lstrip("$").strip().replace(",", ""))
    except InvalidOperation as exc:  # the pattern lets only valid numbers through
        raise ValueError("Enter the monthly amount as a number, e.g. 500.") from exc
    if amount.as_tuple().exponent < -2 and amount != amount.quantize(Decimal("0.01")):
        raise ValueError("Use at most 2 decimals (cents), e.g. 99.95.")
    if amount <= 0:
        raise ValueError("The monthly amount must be more than $0.")
    if amount > MAX_BUDGET:
        raise ValueError("The monthly amount can be at most $100,000,000.")
    return amount.quantize(Decimal("0.01"))


def parse_thresholds(raw: str) -> list[int]:
    """ "50, 80, 100" → [50, 80, 100]: whole percents 1..1000, duplicates dropped, sorted."""
    parts = [p.strip().removesuffix("%").strip() for p in re.split(r"[,;\s]+", raw or "")]
    parts = [p for p in parts if p]
    if not parts:
        raise ValueError("Enter at least one percentage, e.g. 50, 80, 100.")
    values = set()
    for part in parts:
        if not part.isdigit():
            raise ValueError(
                f"“{part[:20]}” is not a whole percentage: use numbers from 1 to 1000 "
                "separated by commas, e.g. 50, 80, 100."
            )
        value = int(part)
        if not 1 <= value <= 1000:
            raise ValueError(f"{value}% is out of range: each threshold is from 1 to 1000.")
        values.add(value)
    if len(values) > MAX_THRESHOLDS:
        raise ValueError(f"At most {MAX_THRESHOLDS} thresholds, e.g. 50, 80, 100.")
    return sorted(values)


class BudgetForm(forms.Form):
    """Create (with a scope the user may manage) or edit (scope fixed) a budget."""

    scope = forms.ChoiceField(
        label="Applies to",
        help_text="The whole organization, or one project.",
    )
    amount = forms.CharField(
        label="Monthly amount (USD)",
        max_length=40,
        help_text="Dollars and cents, e.g. 500 or 1250.50. Months start at midnight in the "
        "organization's billing timezone.",
    )
    thresholds = forms.CharField(
        label="Alert thresholds (%)",
        max_length=200,
        initial=", ".join(str(t) for t in default_thresholds()),
        help_text="Percentages of the amount, e.g. 50, 80, 100; each is alerted once a month.",
    )
    hard_limit = forms.BooleanField(
        label="Hard limit",
        required=False,
        help_text="Refuse the console's own calls (playground) that could take the month past "
        "the amount. Usage reported by applications still counts.",
    )
    forecast_alert = forms.BooleanField(
        label="Forecast alert",
        required=False,
        initial=True,
        help_text="Alert once a month when the month-end projection (from the last 7 days) "
        "passes the amount.",
    )
    is_active = forms.BooleanField(
        label="Active",
        required=False,
        initial=True,
        help_text="An inactive budget is neither evaluated nor enforced.",
    )

    def __init__(self, *args, scopes: list[tuple[str, str]] | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        if scopes is None:  # editing: the scope stays what it is
            del self.fields["scope"]
        else:
            self.fields["scope"].choices = scopes
            del self.fields["is_active"]

    def clean_amount(self) -> Decimal:
        try:
            return parse_amount(self.cleaned_data.get("amount", ""))
        except ValueError as exc:
            raise forms.ValidationError(str(exc), code="invalid") from exc

    def clean_thresholds(self) -> list[int]:
        try:
            return parse_thresholds(self.cleaned_data.get("thresholds", ""))
        except ValueError as exc:
            raise forms.ValidationError(str(exc), code="invalid") from exc
