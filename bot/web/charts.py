"""The dashboard's charts: server-side SVG drawn with pygal, readable in print and without colour.

Every series is told apart by a hatch pattern as well as by its colour (the patterns live once
in the page, `patterns()`), text is black on white, and each SVG carries a <title>. pygal's own
<style> and <script> are taken out of each chart: the page's Content-Security-Policy allows no
inline styles or scripts, so the charts' stylesheet is served as a file (`stylesheet()`).
"""

from __future__ import annotations

import math
import re
from functools import lru_cache
from typing import Any, Sequence

import pygal
from markupsafe import Markup
from pygal.style import Style

# (colour, kind of texture): kept distinct in grey-scale print too
FILLS = (
    ("#1b4f72", "solid"), ("#c0392b", "diagonal"), ("#117a65", "dots"), ("#6c3483", "horizontal"),
    ("#7b7d7d", "cross"), ("#9a7d0a", "backslash"), ("#000000", "vertical"), ("#d35400", "checker"),
)
PREFIX = "svg.pygal-chart"
_SAMPLE_UUID = "stats-sample"

STYLE = Style(
    background="white", plot_background="white", foreground="#000", foreground_strong="#000",
    foreground_subtle="#333", colors=tuple(f"url(#stats-fill-{i})" for i in range(len(FILLS))),
    font_family="DejaVu Sans, Arial, sans-serif", opacity="1", opacity_hover="1", transition="0ms",
    title_font_size=15, label_font_size=11, major_label_font_size=11, legend_font_size=12,
    guide_stroke_color="#999", major_guide_stroke_color="#666",
)
_BASE: dict[str, Any] = {
    "style": STYLE, "js": [], "disable_xml_declaration": True, "width": 860, "height": 340,
    "legend_at_bottom": True, "legend_box_size": 14, "print_values": False, "show_x_guides": False,
    "truncate_legend": 40, "truncate_label": 40, "no_data_text": "Keine Daten im Zeitraum",
}


class _Quicker:
    """pygal, minus two costs that made up half of the drawing time (same SVG otherwise).

    Its tooltip data only feeds its JavaScript, which the page never loads: not drawn. Its attribute
    lookup (config values live in a transient `state` during rendering) is done the same way in fewer steps.
    """

    def _tooltip_data(self, *args: Any, **kwargs: Any) -> None:
        return None

    def __getattribute__(self, name: str) -> Any:
        if name[:2] != "__" and name != "state":
            try:
                state = object.__getattribute__(self, "state")
            except AttributeError:
                state = None
            if state is not None:
                values = state.__dict__
                if name in values:
                    return values[name]
        return object.__getattribute__(self, name)


class Bar(_Quicker, pygal.Bar):
    """pygal.Bar, drawn quicker."""


class StackedBar(_Quicker, pygal.StackedBar):
    """pygal.StackedBar, drawn quicker."""


class HorizontalBar(_Quicker, pygal.HorizontalBar):
    """pygal.HorizontalBar, drawn quicker."""


def _texture(index: int) -> str:
    colour, kind = FILLS[index % len(FILLS)]
    shapes = {
        "solid": f'<rect width="8" height="8" fill="{colour}"/>',
        "diagonal": f'<rect width="8" height="8" fill="#fff"/><path d="M-2,2 l4,-4 M0,8 l8,-8 M6,10 l4,-4" stroke="{colour}" stroke-width="2.5"/>',
        "dots": f'<rect width="8" height="8" fill="#fff"/><circle cx="4" cy="4" r="2.4" fill="{colour}"/>',
        "horizontal": f'<rect width="8" height="8" fill="#fff"/><rect y="0" width="8" height="4" fill="{colour}"/>',
        "cross": f'<rect width="8" height="8" fill="{colour}"/><path d="M0,4 h8 M4,0 v8" stroke="#fff" stroke-width="1.5"/>',
        "backslash": f'<rect width="8" height="8" fill="#fff"/><path d="M-2,6 l4,4 M0,0 l8,8 M6,-2 l4,4" stroke="{colour}" stroke-width="2.5"/>',
        "vertical": f'<rect width="8" height="8" fill="#fff"/><rect width="3" height="8" fill="{colour}"/>',
        "checker": f'<rect width="8" height="8" fill="#fff"/><rect width="4" height="4" fill="{colour}"/><rect x="4" y="4" width="4" height="4" fill="{colour}"/>',
    }
    return (f'<pattern id="stats-fill-{index}" width="8" height="8" patternUnits="userSpaceOnUse">'
            f"{shapes[kind]}</pattern>")


def patterns() -> Markup:
    """One hidden SVG with the fill patterns every chart on the page refers to."""
    defs = "".join(_texture(i) for i in range(len(FILLS)))
    return Markup(f'<svg class="stats-patterns" aria-hidden="true" focusable="false" width="0" height="0"><defs>{defs}</defs></svg>')


def _strip(root: Any) -> Any:
    """Take out pygal's inline <style>, <script> and the (JavaScript-only) tooltip layer."""
    for parent in list(root.iter()):
        for child in list(parent):
            tag = str(child.tag).rsplit("}", 1)[-1]
            if tag in ("style", "script") or "tooltip-overlay" in child.get("class", ""):
                parent.remove(child)
    root.set("role", "img")
    return root


def _render(chart: Any) -> Markup:
    chart.xml_filters = [_strip]
    return Markup(chart.render(is_unicode=True))


@lru_cache(maxsize=1)
def stylesheet() -> str:
    """pygal's CSS for the charts' style, made to apply to every chart on the page (served as a file)."""
    chart = pygal.Bar(**_BASE)
    chart.uuid = _SAMPLE_UUID
    for i in range(len(FILLS)):
        chart.add(str(i), [1])
    svg = chart.render(is_unicode=True)
    css = re.search(r"<style[^>]*>(.*?)</style>", svg, re.S)
    text = (css[1] if css else "").replace("&gt;", ">").replace(f"#chart-{_SAMPLE_UUID}", PREFIX)
    return text + f"\n{PREFIX} .text-overlay text.value{{fill:#000}}\n"


def _every(count: int, most: int = 16) -> int:
    return max(1, math.ceil(count / most))


def _labelled(chart: Any, labels: Sequence[str]) -> None:
    chart.x_labels = list(labels)
    step = _every(len(labels))
    if step > 1:
        chart.x_labels_major = list(labels)[::step]
        chart.show_minor_x_labels = False


def bars_per_day(title: str, y_title: str, days: Sequence[str], series: dict[str, Sequence[float | None]],
                 stacked: bool = False, x_title: str = "Tag") -> Markup:
    """Bars per day (stacked or side by side), one pattern per series, with axis titles and units."""
    kind = StackedBar if stacked else Bar
    chart = kind(**_BASE, title=title, x_title=x_title, y_title=y_title, x_label_rotation=-45 if len(days) > 10 else 0,
                 show_legend=len(series) > 1 or stacked)
    _labelled(chart, days)
    for name, values in series.items():
        chart.add(name, list(values))
    return _render(chart)


def horizontal(title: str, x_title: str, items: Sequence[tuple[str, float]], y_title: str = "") -> Markup:
    """One horizontal bar per item (largest first), the value printed at the bar's end."""
    rows = list(items)[::-1]  # pygal draws the first item at the bottom
    height = max(160, 70 + 26 * len(rows))
    chart = HorizontalBar(**{**_BASE, "height": height, "print_values": True}, title=title, x_title=x_title,
                          y_title=y_title, show_legend=False, print_values_position="top")
    chart.x_labels = [label for label, _ in rows]
    chart.add(x_title, [value for _, value in rows])
    return _render(chart)
