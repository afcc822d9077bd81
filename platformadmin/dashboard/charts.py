"""Charts of the dashboard, drawn on the server by pygal as inline SVG.

The console's Content-Security-Policy allows no inline script or style, and pygal puts a
``<style>`` block, a ``<script>`` block and a few ``style=""`` attributes into every SVG.
They are taken out of pygal's element tree before it is serialized; the look they gave
(series colours, axes, guides) comes from ``static/dashboard.css`` instead, which styles
pygal's classes. No JavaScript: every chart has its numbers in a table beside it, which
is what people without a mouse, and screen readers, read.

Bar heights need a float; the figures people read (the table, the SVG's value labels)
come from the exact Decimal, formatted with the ``money`` filter.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from decimal import Decimal
from xml.etree import ElementTree

import pygal
from django.core.cache import cache
from django.utils.safestring import SafeString, mark_safe
from pygal.style import Style

from platformadmin.templatetags.console_format import format_money

ElementTree.register_namespace("", "http://www.w3.org/2000/svg")
ElementTree.register_namespace("xlink", "http://www.w3.org/1999/xlink")

# One class per series (``color-0`` … in pygal's output); static/dashboard.css colours
# them, so the legend of the table beside the chart uses the same swatches.
SERIES_CLASSES = 9
# Only the sizes matter (pygal lays labels out with them); the colours and fonts of the
# stripped <style> come from static/dashboard.css, with the same sizes.
CHART_STYLE = Style(label_font_size=12, major_label_font_size=12, no_data_font_size=16)
# pygal spends ~100 ms of CPU laying out a 30-day chart and ~300 ms a 90-day one: the SVG
# is cached under a digest of everything it is drawn from (title, labels, names, exact
# amounts, this version), so a cached chart can never show other figures than the page's
# table; new usage changes an amount, hence the key. Bump CHART_VERSION when the drawing
# code changes.
CHART_VERSION = 3
# What pygal's JavaScript tooltip reads (stripped with the script): where to draw it and
# the bar's x label. Without the script nothing shows them; they were ~60% of the SVG's
# bytes (150 KB of a 90-day page). The ``value`` desc, the bar's exact amount, stays.
TOOLTIP_ONLY_DESCS = frozenset({"x centered", "y centered", "x_label"})
# A bar's geometry to a hundredth of a pixel (pygal writes 15 digits: 18% of the bytes left).
RECT_GEOMETRY = ("x", "y", "width", "height")
CHART_CACHE_SECONDS = 24 * 3600


def _strip_inline(root: ElementTree.Element) -> None:
    """Remove what the CSP refuses (<style>, <script>, style attributes), pygal's
    comments (a generation date that would make every page differ) and the data only its
    script's tooltips read (TOOLTIP_ONLY_DESCS); bars' geometry rounded (RECT_GEOMETRY)."""
    for parent in root.iter():
        for child in list(parent):
            tag = child.tag if isinstance(child.tag, str) else "comment"
            name = tag.rsplit("}", 1)[-1]
            if name in ("style", "script", "comment") or (
                name == "desc" and child.get("class") in TOOLTIP_ONLY_DESCS
            ):
                parent.remove(child)
        parent.attrib.pop("style", None)
        if parent.tag == "rect":  # pygal builds its tree without namespaces
            for attribute in RECT_GEOMETRY:
                if (value := parent.get(attribute)) is not None:
                    parent.set(attribute, f"{float(value):.2f}")


def _axis(top: Decimal) -> tuple[list[float], object]:
    """Round ticks from 0 past ``top`` (steps of 1, 2 or 5 × 10ⁿ) and a label format
    with as many decimals as the step needs, so no two ticks read the same."""
    if top <= 0:
        return [0.0], lambda v: "$0"
    raw = top / 5
    exponent = raw.adjusted()
    unit = Decimal(1).scaleb(exponent)
    step = next(m * unit for m in (1, 2, 5, 10) if m * unit >= raw)
    places = max(0, -step.adjusted())
    count = int(top / step) + 1

    def label(value: float) -> str:
        return "$" + f"{value:,.{places}f}" if value else "$0"

    return [float(step * i) for i in range(count + 1)], label


def _fixed(text: str):
    """A pygal value formatter that shows ``text`` (the exact amount, already formatted)."""
    return lambda _value: text


def stacked_days_svg(
    *,
    title: str,
    x_labels: Sequence[str],
    series: Sequence[tuple[str, Sequence[Decimal | None]]],
) -> SafeString:
    """A stacked bar chart of money per day: ``series`` is (name, one amount per label).

    Served from the cache when the same chart was drawn before (see CHART_VERSION)."""
    digest = hashlib.sha256(
        repr((CHART_VERSION, title, tuple(x_labels), [(n, tuple(a)) for n, a in series])).encode()
    ).hexdigest()
    key = f"dashboard:chart:{digest}"
    svg = cache.get(key)
    if svg is None:
        svg = _draw(title=title, x_labels=x_labels, series=series)
        cache.set(key, svg, CHART_CACHE_SECONDS)
    # pygal escapes text and attributes; nothing in the tree comes unescaped from a user.
    return mark_safe(svg)  # noqa: S308


def _draw(
    *,
    title: str,
    x_labels: Sequence[str],
    series: Sequence[tuple[str, Sequence[Decimal | None]]],
) -> str:
    """pygal's SVG of the chart, without what the CSP refuses."""
    totals = [
        sum((a for a in day if a is not None), Decimal(0))
        for day in zip(*(amounts for _, amounts in series), strict=True)
    ] or [Decimal(0)]
    ticks, axis_label = _axis(max(totals))
    many = len(x_labels) > 16
    chart = pygal.StackedBar(
        style=CHART_STYLE,
        js=[],
        css=[],
        disable_xml_declaration=True,
        width=640,
        height=300,
        show_legend=False,  # the table beside it is the legend
        x_label_rotation=-40 if many else 0,
        show_minor_x_labels=False,
        x_labels_major_every=max(1, round(len(x_labels) / 12)),
        truncate_label=-1,
        margin=12,
        margin_bottom=24 if many else 12,
        y_labels=ticks if series else None,  # pygal fails on labels without a series
        # Nothing priced: pygal's "no data" text, not an axis of eleven "$0".
        show_y_labels=max(totals) > 0,
        value_formatter=axis_label,
        no_data_text="No priced usage in this range",
        title=None,
    )
    chart.x_labels = list(x_labels)
    for name, amounts in series:
        chart.add(
            name,
            [
                None
                if amount is None
                else {
                    # geometry only: the label shows the exact amount
                    "value": float(amount),
                    "formatter": _fixed(format_money(amount)),
                }
                for amount in amounts
            ],
        )
    root = chart.render_tree()
    _strip_inline(root)
    # pygal's default title is "Pygal" (a tree without namespaces: the svg's own child)
    if (element := root.find("title")) is not None:
        element.text = title
    root.set("role", "img")
    root.set("aria-label", f"{title} (the numbers are in the table beside the chart)")
    root.set("class", "pygal-chart dashboard-chart")
    return ElementTree.tostring(root, encoding="unicode")
