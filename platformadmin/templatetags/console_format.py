"""Money and counts as people read them: ``{{ cost|money }}``, ``{{ n|count }}``.

Money is a ``Decimal`` everywhere; it is shown as dollars with thousands separators and two
decimals (``$1,234.56``). An amount below a cent keeps two significant digits, so a real
cost never reads as ``$0.00`` (``$0.0042``, ``$0.000012``). ``None`` means *unpriced*, which
is never shown as $0: the filter returns an empty string and the template says "unpriced".
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from html import escape

from django import template
from django.utils.safestring import SafeString, mark_safe

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


UNPRICED_ONLY = (
    '<span class="badge warn" title="No price is known for the model, date or tier of these'
    ' calls: enter a price to count them.">{} unpriced call{}</span>'
)
AMOUNT = '<strong class="amount">{}</strong>'
AMOUNT_AND_UNPRICED = (
    '<strong class="amount">{}</strong> <span class="badge warn" title="No price is known for'
    ' the model, date or tier of these calls: they are not in this amount.">+ {} unpriced'
    " call{}</span>"
)
NOTHING_CALLED = mark_safe('<span class="muted">—</span>')


def format_amount(cost, requests, unpriced) -> SafeString:
    """A cost as people read it: "$12.30", "$12.30 + 4 unpriced calls", or "4 unpriced
    calls" when no call has a price (never a $0 figure for unpriced calls).

    usage/_amount.html is this, as a tag: pages render it per row, where a Python call
    costs a fraction of an ``{% include %}``. Each value is escaped with html.escape, what
    django.utils.html.escape calls (format_html's lazy-string checks cost 5x more here)."""
    if unpriced and requests is not None and unpriced >= requests:
        html = UNPRICED_ONLY.format(escape(format_count(unpriced)), _plural(unpriced))
    elif unpriced:
        html = AMOUNT_AND_UNPRICED.format(
            escape(format_money(cost)), escape(format_count(unpriced)), _plural(unpriced)
        )
    else:
        html = AMOUNT.format(escape(format_money(cost)))
    return mark_safe(html)  # noqa: S308 (fixed markup, every value escaped above)


def format_spend(figures) -> SafeString:
    """A group's cost (``figures`` has ``requests``, ``cost``, ``unpriced_requests``, as
    usage.reports.Figures): format_amount, or a dash when nothing was called or there are
    no figures (None, or the template's empty string for a missing variable)."""
    if not getattr(figures, "requests", 0):
        return NOTHING_CALLED
    return format_amount(figures.cost, figures.requests, figures.unpriced_requests)


def _plural(count) -> str:
    return "" if count == 1 else "s"  # Django's ``pluralize`` for a number


def redact_value(value) -> str:
    """Anything key-shaped replaced (for rows stored before a shape was known)."""
    return redact("" if value is None else str(value))


register.filter("money", format_money)
register.filter("redact", redact_value)
register.filter("count", format_count)
register.filter("spend", format_spend)
register.simple_tag(format_amount, name="amount")
