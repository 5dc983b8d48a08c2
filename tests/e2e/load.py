"""A bounded load on loopback through the real edge: client threads sending GETs until the block ends.

Used by the zero-downtime test and by bench/zero_downtime.py, so both count failures the same way.
"""

from __future__ import annotations

import statistics
import threading
import time
from collections import Counter
from types import TracebackType

import httpx

from .harness import Shipyard


class Load:
    """`with Load(shipyard, app):` keeps `clients` keep-alive clients busy for the block's duration."""

    def __init__(self, shipyard: Shipyard, app: str, clients: int = 4) -> None:
        self.url = f"http://127.0.0.1:{shipyard.edge_port}/"
        self.headers = {"Host": f"{app}.localhost:{shipyard.edge_port}"}
        self.latencies: list[float] = []
        self.bodies: Counter[str] = Counter()
        self.error_statuses: list[str] = []  # "503 <body start>"
        self.no_response: list[str] = []  # transport errors: nothing came back
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run) for _ in range(clients)]

    def _run(self) -> None:
        # Keep-alive connections, as browsers use: the case a proxy reload can break.
        with httpx.Client(timeout=30) as client:
            while not self._stop.is_set():
                started = time.perf_counter()
                try:
                    response = client.get(self.url, headers=self.headers)
                except httpx.TransportError as exc:
                    self.no_response.append(repr(exc))
                    # Not a busy loop while nothing answers: it would take a core from what is recovering.
                    time.sleep(0.01)
                    continue
                self.latencies.append(time.perf_counter() - started)
                self.bodies[response.text] += 1
                if response.status_code >= 500:
                    self.error_statuses.append(f"{response.status_code} {response.text[:100]}")

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()

    @property
    def sent(self) -> int:
        return len(self.latencies) + len(self.no_response)

    @property
    def failures(self) -> list[str]:
        return self.error_statuses + self.no_response

    def p99_ms(self) -> float:
        return statistics.quantiles(self.latencies, n=100)[98] * 1000 if len(self.latencies) > 100 else float("nan")

    def report(self, label: str) -> str:
        return (f"{label:<8} sent {self.sent:>6}  failed {len(self.failures):>3} "
                f"(error status {len(self.error_statuses)}, no response {len(self.no_response)})  "
                f"p99 {self.p99_ms():6.1f} ms")
