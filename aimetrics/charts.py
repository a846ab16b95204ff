"""Inline SVG charts for the admin dashboard: drawn in Python, no JavaScript, nothing fetched.

Every label goes through format_html (escaped); coordinates are numbers computed here. Each mark
carries a `<title>`, which browsers show as a tooltip.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

WIDTH = 640
HEIGHT = 220
LEFT, RIGHT, TOP, BOTTOM = 64, 12, 12, 36  # margins around the plot area
X_LABELS = 8  # at most this many labels under the x axis


@dataclass(frozen=True)
class Point:
    label: str  # shown under the x axis (columns, lines) or beside the bar (bars)
    value: float
    tooltip: str = ""  # defaults to "label: value"


def _nice_ceiling(value: float) -> float:
    """The smallest 1, 2, 2.5 or 5 × 10^n at or above `value`, so grid lines fall on round
    numbers."""
    if value <= 0:
        return 1.0
    magnitude = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * magnitude:
            return step * magnitude
    return 10 * magnitude


def _number(value: float) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.4g}"


def _svg(title: str, body: SafeString, height: int = HEIGHT) -> SafeString:
    return format_html(
        '<svg class="aimetrics-chart" viewBox="0 0 {} {}" role="img" aria-label="{}">'
        "<title>{}</title>{}</svg>",
        WIDTH,
        height,
        title,
        title,
        body,
    )


def _empty(title: str, message: str) -> SafeString:
    body = format_html(
        '<text class="aimetrics-empty" x="{}" y="{}" text-anchor="middle">{}</text>',
        WIDTH / 2,
        HEIGHT / 2,
        message,
    )
    return _svg(title, body)


def _y_axis(top_value: float, unit: str) -> SafeString:
    """Four grid lines with their values, from 0 to `top_value`."""
    plot_height = HEIGHT - TOP - BOTTOM
    lines = []
    for i in range(5):
        y = TOP + plot_height * (1 - i / 4)
        label = f"{_number(top_value * i / 4)} {unit}".strip()
        lines.append((LEFT, f"{y:.1f}", WIDTH - RIGHT, f"{y:.1f}", LEFT - 6, f"{y + 4:.1f}", label))
    return format_html_join(
        "",
        '<line class="aimetrics-grid" x1="{}" y1="{}" x2="{}" y2="{}"/>'
        '<text class="aimetrics-axis" x="{}" y="{}" text-anchor="end">{}</text>',
        lines,
    )


def _x_labels(points: Sequence[Point], xs: Sequence[float]) -> SafeString:
    every = max(1, math.ceil(len(points) / X_LABELS))
    labels = [
        (f"{x:.1f}", HEIGHT - BOTTOM + 16, point.label)
        for i, (point, x) in enumerate(zip(points, xs, strict=True))
        if i % every == 0
    ]
    return format_html_join(
        "", '<text class="aimetrics-axis" x="{}" y="{}" text-anchor="middle">{}</text>', labels
    )


def _tooltip(point: Point, unit: str) -> str:
    return point.tooltip or f"{point.label}: {_number(point.value)} {unit}".strip()


def line_chart(points: Sequence[Point], *, title: str, unit: str, empty: str) -> SafeString:
    """A line with a dot per point (e.g. P95 latency per hour)."""
    if not points:
        return _empty(title, empty)
    top_value = _nice_ceiling(max(p.value for p in points))
    plot_width, plot_height = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    step = plot_width / max(len(points) - 1, 1)
    xs = [LEFT + (i * step if len(points) > 1 else plot_width / 2) for i in range(len(points))]
    ys = [TOP + plot_height - plot_height * p.value / top_value for p in points]
    path = " ".join(f"{x:.1f},{y:.1f}" for x, y in zip(xs, ys, strict=True))
    dots = format_html_join(
        "",
        '<circle class="aimetrics-dot" cx="{}" cy="{}" r="3"><title>{}</title></circle>',
        (
            (f"{x:.1f}", f"{y:.1f}", _tooltip(p, unit))
            for x, y, p in zip(xs, ys, points, strict=True)
        ),
    )
    body = format_html(
        '{}{}<polyline class="aimetrics-line" fill="none" points="{}"/>{}',
        _y_axis(top_value, unit),
        _x_labels(points, xs),
        path,
        dots,
    )
    return _svg(title, body)


def column_chart(points: Sequence[Point], *, title: str, unit: str, empty: str) -> SafeString:
    """Vertical bars over time (e.g. cost per day)."""
    if not points:
        return _empty(title, empty)
    top_value = _nice_ceiling(max(p.value for p in points))
    plot_width, plot_height = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    slot = plot_width / len(points)
    bar = max(slot * 0.7, 1.0)
    xs = [LEFT + slot * (i + 0.5) for i in range(len(points))]
    rects = []
    for x, point in zip(xs, points, strict=True):
        height = plot_height * point.value / top_value
        rects.append(
            (
                f"{x - bar / 2:.1f}",
                f"{TOP + plot_height - height:.1f}",
                f"{bar:.1f}",
                f"{height:.1f}",
                _tooltip(point, unit),
            )
        )
    body = format_html(
        "{}{}{}",
        _y_axis(top_value, unit),
        _x_labels(points, xs),
        format_html_join(
            "",
            '<rect class="aimetrics-bar" x="{}" y="{}" width="{}" height="{}">'
            "<title>{}</title></rect>",
            rects,
        ),
    )
    return _svg(title, body)


def bar_chart(points: Sequence[Point], *, title: str, unit: str, empty: str) -> SafeString:
    """Horizontal bars, one per label, longest first as given (e.g. failures by error type)."""
    if not points:
        return _empty(title, empty)
    row, label_width = 26, 140
    height = TOP + row * len(points) + 8
    top_value = max(p.value for p in points) or 1.0
    plot_width = WIDTH - label_width - RIGHT - 60
    rows = []
    for i, point in enumerate(points):
        y = TOP + row * i
        length = plot_width * point.value / top_value
        rows.append(
            (
                label_width - 8,
                f"{y + row / 2 + 4:.1f}",
                point.label,
                label_width,
                f"{y + 4:.1f}",
                f"{max(length, 1.0):.1f}",
                row - 8,
                _tooltip(point, unit),
                f"{label_width + length + 6:.1f}",
                f"{y + row / 2 + 4:.1f}",
                _number(point.value),
            )
        )
    body = format_html_join(
        "",
        '<text class="aimetrics-axis" x="{}" y="{}" text-anchor="end">{}</text>'
        '<rect class="aimetrics-bar aimetrics-bar-failure" x="{}" y="{}" width="{}" height="{}">'
        "<title>{}</title></rect>"
        '<text class="aimetrics-axis" x="{}" y="{}">{}</text>',
        rows,
    )
    return _svg(title, body, height=height)
