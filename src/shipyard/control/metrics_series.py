"""The dashboard's chart data from stored buckets: pure functions, no store and no clock of their own."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from shipyard.edge.metrics import LATENCY_BUCKETS
from shipyard.store.metrics import HOUR, MINUTE, STATUS_CLASSES, Bucket, merge_buckets

@dataclass(frozen=True)
class Window:
    name: str
    step: int  # seconds between the chart's points
    points: int
    resolution: int  # of the stored buckets the points are made of

    def first(self, now: float) -> int:
        """The start of the window's first point: the last point is the one `now` is in."""
        return self.last(now) - (self.points - 1) * self.step

    def last(self, now: float) -> int:
        return int(now) - int(now) % self.step


WINDOWS = {
    "hour": Window("hour", MINUTE, 60, MINUTE),
    "day": Window("day", 5 * MINUTE, 288, MINUTE),  # minutes five at a time: ≤ 300 points
    "week": Window("week", HOUR, 168, HOUR),
}


@dataclass(frozen=True)
class AppSeries:
    """One app's figures over a window, a value per point for every time in `times` (the x axis has no holes:
    a point without figures has zero requests, and None for what was not measured)."""

    app: str
    window: str  # hour | day | week
    step: int  # seconds per point
    times: list[int]  # each point's start, unix seconds
    requests_per_second: list[float]
    by_class: dict[str, list[float]]  # "1xx" … "5xx" → requests per second
    p50: list[float | None]  # latency in ms; None where there were no requests
    p95: list[float | None]
    p99: list[float | None]
    instances: list[int]  # web instances up (the most seen in the point)
    cpu: dict[str, list[float | None]]  # instance name ("web.1") → cores, averaged; None: not running or unknown
    memory: dict[str, list[float | None]]  # instance name → bytes, averaged
    total_requests: int
    total_by_class: dict[str, int]
    total_bytes_sent: int


def histogram_quantile(q: float, counts: Sequence[int], bounds: Sequence[float] = LATENCY_BUCKETS) -> float | None:
    """The q-quantile (0 … 1) of a histogram, in the bounds' unit, as Prometheus's histogram_quantile: linear
    within the bucket it falls in (the first bucket starting at 0); in the +Inf bucket (counts[len(bounds)]),
    the highest finite bound, as nothing more is known. None for an empty histogram."""
    total = sum(counts)
    if total <= 0:
        return None
    rank = min(max(q, 0.0), 1.0) * total
    below = 0
    for index, count in enumerate(counts):
        if count > 0 and below + count >= rank:
            if index >= len(bounds):
                return float(bounds[-1])
            lower = float(bounds[index - 1]) if index > 0 else 0.0
            return lower + (bounds[index] - lower) * max(rank - below, 0) / count
        below += count
    return float(bounds[-1])


def points_of(window: Window, now: float, buckets: Sequence[Bucket]) -> list[Bucket]:
    """The window's points, each made of the buckets that start within it (an empty Bucket where none do)."""
    first = window.first(now)
    grouped: dict[int, list[Bucket]] = {}
    for bucket in buckets:
        start = bucket.start - bucket.start % window.step
        if first <= start <= window.last(now):
            grouped.setdefault(start, []).append(bucket)
    times = [first + i * window.step for i in range(window.points)]
    return [merge_buckets(t, grouped[t]) if t in grouped else Bucket(start=t) for t in times]


def _instance_order(name: str) -> tuple[str, int, str]:
    kind, _, number = name.partition(".")
    return (kind, int(number), "") if number.isdigit() else (kind, 0, number)


def build_series(app: str, window: Window, now: float, buckets: Sequence[Bucket]) -> AppSeries:
    points = points_of(window, now, buckets)
    last = window.last(now)
    # The last point is under way: its rate is over the seconds it has had so far.
    seconds = [float(window.step) if p.start < last else float(min(window.step, max(1.0, now - p.start)))
               for p in points]
    names = sorted({name for p in points for name in p.usage}, key=_instance_order)
    by_class = {c: [p.by_class[i] / s for p, s in zip(points, seconds)] for i, c in enumerate(STATUS_CLASSES)}
    return AppSeries(
        app=app, window=window.name, step=window.step, times=[p.start for p in points],
        requests_per_second=[p.requests / s for p, s in zip(points, seconds)],
        by_class=by_class, p50=_latency(points, 0.5), p95=_latency(points, 0.95), p99=_latency(points, 0.99),
        instances=[p.instances for p in points],
        cpu={name: [p.usage[name][0] if name in p.usage else None for p in points] for name in names},
        memory={name: [p.usage[name][1] if name in p.usage else None for p in points] for name in names},
        total_requests=sum(p.requests for p in points),
        total_by_class={c: sum(p.by_class[i] for p in points) for i, c in enumerate(STATUS_CLASSES)},
        total_bytes_sent=sum(p.bytes_sent for p in points))


def _latency(points: Sequence[Bucket], q: float) -> list[float | None]:
    """Each point's q-quantile in milliseconds."""
    found = (histogram_quantile(q, p.latency) for p in points)
    return [None if seconds is None else round(seconds * 1000, 3) for seconds in found]
