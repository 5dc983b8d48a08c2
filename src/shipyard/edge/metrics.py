"""Per-app request figures from the edge's request log, in Prometheus's text format (prometheus_client, with
a registry of the platform's own: no process-global metric state)."""

from __future__ import annotations

from collections.abc import Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from shipyard.edge.router_log import RouterEntry

# Seconds: fast pages to the slow end of what a web request should take.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class EdgeMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._requests = Counter("shipyard_requests", "Requests the edge answered, by app and status class",
                                 ["app", "status_class"], registry=self.registry)
        self._latency = Histogram("shipyard_request_duration_seconds",
                                  "Time from a request's arrival to the end of its response, by app", ["app"],
                                  buckets=LATENCY_BUCKETS, registry=self.registry)
        self._bytes = Counter("shipyard_response_bytes", "Bytes the edge sent in responses, by app", ["app"],
                              registry=self.registry)
        self._in_flight = Gauge("shipyard_instance_in_flight_requests",
                                "Requests in flight per instance, when scraped", ["app", "instance"],
                                registry=self.registry)
        self._classes: dict[str, set[str]] = {}  # app → status classes seen: the series `forget` removes

    def observe(self, entry: RouterEntry) -> None:
        self._requests.labels(entry.app, entry.status_class).inc()
        self._classes.setdefault(entry.app, set()).add(entry.status_class)
        self._latency.labels(entry.app).observe(entry.milliseconds / 1000)
        self._bytes.labels(entry.app).inc(entry.bytes_sent)

    def forget(self, app: str) -> None:
        """A destroyed app's series go (a new app of the same name starts from zero)."""
        classes = self._classes.pop(app, set())
        for status_class in classes:
            self._requests.remove(app, status_class)
        if classes:
            self._latency.remove(app)
            self._bytes.remove(app)

    def render(self, in_flight: Mapping[tuple[str, str], int]) -> bytes:
        """The text exposition, with in-flight requests per (app, instance) as of now."""
        self._in_flight.clear()
        for (app, instance), count in in_flight.items():
            self._in_flight.labels(app, instance).set(count)
        return generate_latest(self.registry)
