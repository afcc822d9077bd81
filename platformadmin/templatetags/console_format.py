"""Money and counts as people read them: ``{{ cost|money }}``, ``{{ n|count }}``.

Money is a ``Decimal`` everywhere; it is shown as dollars with thousands separators and two
decimals (``$1,234.56``). An amount below a cent keeps two significant digits, so a real
cost never reads as ``$0.00`` (``$0.0042``, ``$0.000012``). ``None`` means *unpriced*, which
is never shown as $0: the filter returns an empty string and the template says "unpriced".
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from django import template

from platformadmin.redaction import redact

register = template.Library()

CENT = Decimal("0.01")


def format_money(value) -> str:
    """``$1,234.56``; below a cent, two significant digits; ``""`` for None."""
    if value is None or value == "":
        return ""
    try:
        amount = value if isinstance(value, Decimal) else Decimal(str(value))
    except (InvalidOperation, ValueError):
        return ""
    sign = "-" if amount < 0 else ""
    amount = abs(amount)
    if amount == 0 or amount >= CENT:
        text = f"{amount.quantize(CENT, rounding=ROUND_HALF_UP):,}"
    else:
        # exponent of the first significant digit, e.g. 0.0042 -> -3; keep two digits
        places = -amount.adjusted() + 1
        text = f"{amount.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP):f}"
    return f"{sign}${text}"


def format_count(value) -> str:
    """A whole number with thousands separators (``2,000,000``); ``""`` for None."""
    if value is None or value == "":
        return ""
    try:
        return f"{int(value):,}"
    except (TypeError, ValueError):
        return str(value)


def redact_value(value) -> str:
    """Anything key-shaped replaced (for rows stored before a shape was known)."""
    return redact("" if value is None else str(value))


register.filter("money", format_money)
register.filter("redact", redact_value)
register.filter("count", format_count)
