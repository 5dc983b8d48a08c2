"""Requests during deploys vs a steady period, through the real edge, in one run.

Four client threads send requests on loopback (bounded by time) to flask-hello while Shipyard does, in
order: 10 code-only redeploys, a config change, a scale from 1 to 3 web instances and back, and a
rollback. The same load runs for a steady period first as the baseline. A failure is an error status or
no response at all (counted separately: Caddy closes connections it had accepted but not read when a
route change restarts its server; browsers resend those).
Usage: python bench/zero_downtime.py
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.e2e.harness import Shipyard  # noqa: E402

CLIENTS = 4


class Load:
    def __init__(self, shipyard: Shipyard, app: str) -> None:
        self.url = f"http://127.0.0.1:{shipyard.edge_port}/"
        self.headers = {"Host": f"{app}.localhost:{shipyard.edge_port}"}
        self.latencies: list[float] = []
        self.errors = 0
        self.no_response = 0
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run) for _ in range(CLIENTS)]

    def _run(self) -> None:
        with httpx.Client(timeout=10) as client:
            while not self._stop.is_set():
                started = time.perf_counter()
                try:
                    status = client.get(self.url, headers=self.headers).status_code
                    self.latencies.append(time.perf_counter() - started)
                    if status >= 500:
                        self.errors += 1
                except (httpx.RemoteProtocolError, httpx.ReadError, httpx.ConnectError):
                    self.no_response += 1

    def __enter__(self) -> "Load":
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join()

    def report(self, label: str) -> str:
        sent = len(self.latencies) + self.no_response
        p99 = statistics.quantiles(self.latencies, n=100)[98] * 1000 if len(self.latencies) > 100 else float("nan")
        return (f"{label:<8} sent {sent:>6}  error status {self.errors:>3}  no response {self.no_response:>3}  "
                f"p99 {p99:6.1f} ms")


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        shipyard = Shipyard(Path(tmp))
        shipyard.start()
        try:
            shipyard.cli("apps", "create", "zd")
            work = shipyard.checkout("flask-hello", "zd")
            shipyard.push(work)
            with Load(shipyard, "zd") as steady:
                time.sleep(10)
            with Load(shipyard, "zd") as deploying:
                for n in range(10):
                    (work / "app.py").write_text((work / "app.py").read_text() + f"\n# redeploy {n}\n")
                    shipyard.commit(work, f"redeploy {n}")
                    shipyard.push(work)
                shipyard.cli("config", "set", "zd", "GREETING=hi")
                shipyard.cli("ps:scale", "zd", "web=3")
                shipyard.cli("ps:scale", "zd", "web=1")
                shipyard.cli("rollback", "zd", "v2")
                time.sleep(1)
        finally:
            shipyard.kill_all()
    print(steady.report("steady"))
    print(deploying.report("deploys"))
    print("(deploys = 10 redeploys, a config change, scale 1→3→1, a rollback)")


if __name__ == "__main__":
    main()
