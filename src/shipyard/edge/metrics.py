"""Per-app request figures from the edge's request log, in Prometheus's text format.

Counting is plain integers (a few hundred nanoseconds a request: it runs for every request the edge answers);
prometheus_client turns them into its text format only when scraped, through a collector of the platform's
own registry (no process-global metric state).
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric

from shipyard.edge.router_log import RouterEntry

# Seconds: fast pages to the slow end of what a web request should take.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_BUCKET_MS = tuple(int(b * 1000) for b in LATENCY_BUCKETS)


@dataclass
class AppFigures:
    by_class: dict[str, int] = field(default_factory=dict)
    buckets: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_BUCKETS) + 1))  # last: +Inf only
    seconds: float = 0.0
    bytes_sent: int = 0


class EdgeMetrics:
    def __init__(self) -> None:
        self._apps: dict[str, AppFigures] = {}
        self._in_flight: Mapping[tuple[str, str], int] = {}
        self.registry = CollectorRegistry()
        self.registry.register(self)  # prometheus_client calls collect() at each scrape

    def observe(self, entry: RouterEntry) -> None:
        figures = self._apps.get(entry.app)
        if figures is None:
            figures = self._apps[entry.app] = AppFigures()
        figures.by_class[entry.status_class] = figures.by_class.get(entry.status_class, 0) + 1
        figures.buckets[bisect_left(_BUCKET_MS, entry.milliseconds)] += 1
        figures.seconds += entry.milliseconds / 1000
        figures.bytes_sent += entry.bytes_sent

    def snapshot(self) -> dict[str, AppFigures]:
        """A copy of every app's counters as of now (the metrics history takes the differences between two)."""
        return {app: AppFigures(dict(f.by_class), list(f.buckets), f.seconds, f.bytes_sent)
                for app, f in self._apps.items()}

    def requests_total(self, app: str) -> int:
        """Requests answered for the app since the platform started (the autoscaler's idle clock)."""
        figures = self._apps.get(app)
        return sum(figures.by_class.values()) if figures else 0

    def forget(self, app: str) -> None:
        """A destroyed app's series go (a new app of the same name starts from zero)."""
        self._apps.pop(app, None)

    def render(self, in_flight: Mapping[tuple[str, str], int]) -> bytes:
        """The text exposition, with in-flight requests per (app, instance) as of now."""
        self._in_flight = in_flight
        return generate_latest(self.registry)

    def collect(self) -> Iterator[Metric]:
        requests = CounterMetricFamily("shipyard_requests", "Requests the edge answered, by app and status class",
                                       labels=["app", "status_class"])
        latency = HistogramMetricFamily("shipyard_request_duration_seconds",
                                        "Time from a request's arrival to the end of its response, by app",
                                        labels=["app"])
        sent = CounterMetricFamily("shipyard_response_bytes", "Bytes the edge sent in responses, by app",
                                   labels=["app"])
        for app, figures in sorted(self._apps.items()):
            for status_class, count in sorted(figures.by_class.items()):
                requests.add_metric([app, status_class], count)
            cumulative, running = [], 0
            for bound, count in zip((*map(str, LATENCY_BUCKETS), "+Inf"), figures.buckets):
                running += count
                cumulative.append((bound, running))
            latency.add_metric([app], cumulative, figures.seconds)
            sent.add_metric([app], figures.bytes_sent)
        in_flight = GaugeMetricFamily("shipyard_instance_in_flight_requests",
                                      "Requests in flight per instance, when scraped", labels=["app", "instance"])
        for (app, instance), count in sorted(self._in_flight.items()):
            in_flight.add_metric([app, instance], count)
        yield from (requests, latency, sent, in_flight)
