"""Each request the edge answered, as a router line in the app's log and in the per-app metrics."""

from __future__ import annotations

from shipyard.edge.haproxy import Edge
from shipyard.edge.metrics import EdgeMetrics
from shipyard.edge.router_log import NO_SERVER, RouterEntry, router_line
from shipyard.errors import ShipyardError
from shipyard.runtime.supervisor import Supervisor


class RequestRecorder:
    def __init__(self, supervisor: Supervisor, edge: Edge) -> None:
        self._supervisor = supervisor
        self._edge = edge
        self.metrics = EdgeMetrics()
        edge.on_requests = self.record

    def record(self, entries: list[RouterEntry]) -> None:
        """Counted always; logged within each app's log rate (a request flood must not flood the disk: over
        the rate, lines are dropped and counted like the app's own output). One log call per app per batch."""
        lines: dict[str, list[bytes]] = {}
        for entry in entries:
            if not self._edge.routes(entry.app):
                continue  # sent before the app was destroyed: its log folder is gone and must stay gone
            self.metrics.observe(entry)
            lines.setdefault(entry.app, []).append(router_line(entry, self.instance_name(entry)).encode())
        for app, batch in lines.items():
            self._supervisor.app_log(app).output("router", batch)

    def instance_name(self, entry: RouterEntry) -> str:
        if entry.server == NO_SERVER:
            return "edge"  # answered by the edge itself: no instance running, or none answered
        address = self._edge.address(entry.backend, entry.server)
        instance = self._supervisor.instance_at(entry.app, address) if address else None
        return instance.spec.name if instance is not None else "-"

    async def metrics_text(self) -> bytes:
        """Prometheus's text format, with each running instance's requests in flight as of now."""
        in_flight: dict[tuple[str, str], int] = {}
        try:
            busy = await self._edge.upstream_requests()
        except ShipyardError:  # the edge is restarting: the counters still answer
            busy = {}
        for app in self._supervisor.apps():
            for instance in self._supervisor.instances(app):
                if instance.spec.process_type == "web":
                    in_flight[(app, instance.spec.name)] = busy.get(instance.address, 0)
        return self.metrics.render(in_flight)

    def forget(self, app: str) -> None:
        self.metrics.forget(app)
