"""Charts as server-rendered SVG: no JavaScript, no chart library. Pure functions, values in, SVG text out.

Every chart is an image for screen readers (`role="img"`) whose name states its figures in words, so a person
who cannot see it, and a test, read the same thing. Every label is escaped. A None value is a gap in the line.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from html import escape

from markupsafe import Markup

# Fixed colours, so a series looks the same on every chart and page (and 5xx is never green).
COLOURS = {
    "1xx": "#6b7280", "2xx": "#15803d", "3xx": "#2563eb", "4xx": "#b45309", "5xx": "#b91c1c", "other": "#6b7280",
    "p50": "#2563eb", "p95": "#b45309", "p99": "#b91c1c",
    "requests": "#2563eb", "requests/s": "#2563eb", "instances": "#7c3aed",
}
# For other names (instances: web.1, worker.2 …): picked by a stable hash of the name, the same on every run.
PALETTE = ("#2563eb", "#15803d", "#7c3aed", "#b45309", "#0e7490", "#be185d", "#4d7c0f", "#9333ea", "#c2410c",
           "#0369a1")
FONT = 'font-family="system-ui, sans-serif" font-size="11"'
LEGEND_ROW = 16


def colour(name: str) -> str:
    if name in COLOURS:
        return COLOURS[name]
    # web.1 … web.10 get ten different colours (a hash alone would give two of them the same one); a process
    # type shifts where its numbers start.
    kind, _, index = name.rpartition(".")
    if kind and index.isdigit():
        return PALETTE[(zlib.crc32(kind.encode()) + int(index) - 1) % len(PALETTE)]
    return PALETTE[zlib.crc32(name.encode()) % len(PALETTE)]


def number(value: float) -> str:
    """A figure for people: 3 significant digits or so, thousands as k/M/G, no exponent, no trailing zeros."""
    size = abs(value)
    for limit, unit, suffix in ((1e9, 1e9, "G"), (1e6, 1e6, "M"), (1e4, 1e3, "k")):
        if size >= limit:
            return number(value / unit) + suffix
    if size >= 100 or value == int(value):
        return f"{value:.0f}"
    text = f"{value:.1f}" if size >= 10 else f"{value:.2f}" if size >= 1 else f"{value:.3g}"
    return text.rstrip("0").rstrip(".") if "." in text and "e" not in text else text


def nice_ceiling(value: float) -> float:
    """The y axis's top: the next 1, 2, 2.5 or 5 × 10ⁿ at or above value (1 for nothing)."""
    if not value > 0 or math.isinf(value):
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * power * (1 + 1e-9):
            return step * power
    return 10 * power


def _svg(width: int, height: int, name: str, body: list[str]) -> Markup:
    label = escape(name, quote=True)
    return Markup(f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
                  f'viewBox="0 0 {width} {height}" role="img" aria-label="{label}" {FONT}>'
                  f"<title>{label}</title>{''.join(body)}</svg>")


def _segments(points: Sequence[tuple[float, float | None]]) -> list[list[tuple[float, float]]]:
    """Runs of points with values: a None ends one (a gap)."""
    runs: list[list[tuple[float, float]]] = [[]]
    for x, y in points:
        if y is None:
            if runs[-1]:
                runs.append([])
        else:
            runs[-1].append((x, y))
    return [run for run in runs if run]


def _line(run: list[tuple[float, float]], stroke: str, width: float = 1.5) -> str:
    if len(run) == 1:  # a lone value between gaps: a dot, or it would not show at all
        x, y = run[0]
        return f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{width + 0.5:g}" fill="{stroke}"/>'
    path = " ".join(f"{'M' if i == 0 else 'L'}{x:.1f},{y:.1f}" for i, (x, y) in enumerate(run))
    return (f'<path d="{path}" fill="none" stroke="{stroke}" stroke-width="{width:g}" stroke-linejoin="round" '
            'stroke-linecap="round"/>')


def _finite(values: Sequence[float | None]) -> list[float]:
    return [v for v in values if v is not None and math.isfinite(v)]


def sparkline(values: Sequence[float | None], width: int = 120, height: int = 24,
              label: str = "Requests per minute") -> Markup:
    """A small line of values (oldest first), its name `label: peak P, total T`."""
    known = _finite(values)
    words = f"{label}: peak {number(max(known))}, total {number(sum(known))}" if known else f"{label}: no data"
    top = max(known, default=0) or 1.0
    pad = 2.0
    step = (width - 2 * pad) / max(len(values) - 1, 1)
    points = [(pad + i * step, None if v is None or not math.isfinite(v) else
               height - pad - (height - 2 * pad) * max(v, 0) / top) for i, v in enumerate(values)]
    body = [f'<line x1="{pad}" y1="{height - pad}" x2="{width - pad}" y2="{height - pad}" stroke="currentColor" '
            'stroke-opacity="0.2"/>']
    body += [_line(run, colour("requests"), 1.25) for run in _segments(points)]
    return _svg(width, height, words, body)


def _time_label(moment: int, span: int) -> str:
    when = datetime.fromtimestamp(moment, timezone.utc)
    if span > 2 * 86400:  # a week: days
        return when.strftime("%d %b")
    return when.strftime("%d %b %H:%M") if span > 12 * 3600 else when.strftime("%H:%M")


def _describe(series: Mapping[str, Sequence[float | None]], unit: str) -> str:
    """The figures in words: each series's peak (with its unit), or that there is no data."""
    suffix = f" {unit}" if unit else ""
    parts = []
    for name, values in series.items():
        known = _finite(values)
        peak = f"peak {number(max(known))}{suffix}" if known else "no data"
        parts.append(peak if len(series) == 1 else f"{name} {peak}")
    return ", ".join(parts) or "no data"


def _legend(names: Sequence[str], left: float, right: float) -> tuple[list[str], int]:
    """Swatch and name per series, wrapped to the chart's width; returns the elements and the rows used."""
    body, x, row = [], left, 0
    for name in names:
        room = 18 + 6.5 * len(name) + 12  # swatch, text at ~6.5 px a character, gap
        if x > left and x + room > right:
            x, row = left, row + 1
        y = 4 + row * LEGEND_ROW
        body.append(f'<rect x="{x:.1f}" y="{y}" width="10" height="10" rx="2" fill="{colour(name)}"/>'
                    f'<text x="{x + 14:.1f}" y="{y + 9}" fill="currentColor">{escape(name)}</text>')
        x += room
    return body, row + 1 if names else 0


def line_chart(times: Sequence[int], series: Mapping[str, Sequence[float | None]], *, unit: str, title: str,
               width: int = 640, height: int = 180, summary: str = "") -> Markup:
    """Lines over time (unix seconds, evenly spaced or not), one per series, sharing a y axis from 0.

    Its name is `title: figures[, summary]`: e.g. "Requests per second, last hour: peak 3.2 req/s, total 412
    requests" with summary="total 412 requests" (a total the chart cannot know from rates)."""
    words = f"{title}: {_describe(series, unit)}" + (f", {summary}" if summary else "")
    peak = max((v for values in series.values() for v in _finite(values)), default=0.0)
    y_max = nice_ceiling(peak)
    axis = f"{number(y_max)} {unit}".strip()
    # Room on the left for the y axis's label (about 6.5 px a character), so "2.5 cores" is not cut off.
    left, right, bottom = max(28.0, 6.5 * len(axis) + 10), width - 10.0, height - 18.0
    legend, rows = _legend(list(series), left, right)
    top = 8.0 + rows * LEGEND_ROW
    body = list(legend)
    # The y axis: its top and zero, and a light line at each.
    for y, text in ((top, axis), (bottom, "0")):
        body.append(f'<line x1="{left}" y1="{y}" x2="{right}" y2="{y}" stroke="currentColor" stroke-opacity="0.2"/>'
                    f'<text x="{left - 6}" y="{y + 4}" text-anchor="end" fill="currentColor">{escape(text)}</text>')
    if not times:
        body.append(f'<text x="{(left + right) / 2}" y="{(top + bottom) / 2}" text-anchor="middle" '
                    'fill="currentColor">No data</text>')
        return _svg(width, height, words, body)
    first, last = times[0], times[-1]
    span = last - first

    def x_of(moment: int) -> float:
        return (left + right) / 2 if span <= 0 else left + (right - left) * (moment - first) / span

    def y_of(value: float | None) -> float | None:
        if value is None or not math.isfinite(value):
            return None
        return bottom - (bottom - top) * max(0.0, min(value, y_max)) / y_max

    for name, values in series.items():
        points = [(x_of(t), y_of(v)) for t, v in zip(times, values)]
        body += [_line(run, colour(name)) for run in _segments(points)]
    start, end = _time_label(first, span), _time_label(last, span)
    body.append(f'<text x="{left}" y="{height - 4}" fill="currentColor">{escape(start)}</text>'
                f'<text x="{right}" y="{height - 4}" text-anchor="end" fill="currentColor">{escape(end)} UTC</text>')
    return _svg(width, height, words, body)
