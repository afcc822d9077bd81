"""The money and count filters: money as money, never a raw decimal or a false $0."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.template import Context, Template

from platformadmin.templatetags.console_format import format_count, format_money


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
