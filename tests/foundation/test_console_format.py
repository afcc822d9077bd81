"""The money and count filters: money as money, never a raw decimal or a false $0."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.template import Context, Template

from platformadmin.templatetags.console_format import format_count, format_money
from usage.reports import Figures


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (Decimal("0.0600499250000000"), "$0.06"),
        (Decimal("1234.5649"), "$1,234.56"),
        (Decimal("1234.565"), "$1,234.57"),
        (Decimal("0"), "$0.00"),
        (Decimal("0.0042"), "$0.0042"),
        (Decimal("0.004249"), "$0.0042"),
        (Decimal("0.0000123"), "$0.000012"),
        (Decimal("0.0000000001"), "$0.00000000010"),
        (Decimal("-2.5"), "-$2.50"),
        (Decimal("1000000"), "$1,000,000.00"),
        (None, ""),
    ],
)
def test_money(value, shown):
    assert format_money(value) == shown


def test_a_small_cost_is_never_zero():
    for exponent in range(3, 11):
        assert format_money(Decimal(1).scaleb(-exponent)).strip("$0.") != ""


@pytest.mark.parametrize(
    ("value", "shown"), [(2000000, "2,000,000"), (80229, "80,229"), (0, "0"), (None, "")]
)
def test_count(value, shown):
    assert format_count(value) == shown


def test_filters_in_a_template():
    rendered = Template("{% load console_format %}{{ c|money }} {{ n|count }}").render(
        Context({"c": Decimal("12345.678"), "n": 1234567})
    )
    assert rendered == "$12,345.68 1,234,567"


PARTLY = (
    '<strong class="amount">$12.30</strong> <span class="badge warn" title="No price is known'
    ' for the model, date or tier of these calls: they are not in this amount.">+ {} unpriced'
    " call{}</span>"
)
NONE_PRICED = (
    '<span class="badge warn" title="No price is known for the model, date or tier of these'
    ' calls: enter a price to count them.">{} unpriced call{}</span>'
)


@pytest.mark.parametrize(
    ("cost", "requests", "unpriced", "html"),
    [
        (Decimal("12.3"), 5, 0, '<strong class="amount">$12.30</strong>'),
        (Decimal("12.3"), 5, None, '<strong class="amount">$12.30</strong>'),
        (Decimal("12.3"), 5, 1, PARTLY.format(1, "")),
        (Decimal("12.3"), 5000, 1234, PARTLY.format("1,234", "s")),
        (None, 1, 1, NONE_PRICED.format(1, "")),
        (None, 3, 3, NONE_PRICED.format(3, "s")),
        (None, 0, 0, '<strong class="amount"></strong>'),
    ],
)
def test_amount_tag_and_include(cost, requests, unpriced, html):
    """usage/_amount.html (the include other pages use) is the ``amount`` tag's HTML."""
    context = Context({"cost": cost, "requests": requests, "unpriced": unpriced})
    tag = Template("{% load console_format %}{% amount cost requests unpriced %}")
    include = Template(
        '{% include "usage/_amount.html" with cost=cost requests=requests unpriced=unpriced %}'
    )
    assert tag.render(context) == html
    assert include.render(context) == html + "\n"


def test_spend_is_a_dash_when_nothing_was_called_else_the_amount():
    spend = Template("{% load console_format %}{{ f|spend }}")
    assert spend.render(Context({"f": Figures()})) == '<span class="muted">—</span>'
    assert spend.render(Context({"f": None})) == '<span class="muted">—</span>'
    assert spend.render(Context({})) == '<span class="muted">—</span>'
    called = Figures(requests=5, unpriced_requests=1, priced_cost=Decimal("12.3"))
    assert spend.render(Context({"f": called})) == PARTLY.format(1, "")
