"""Faults the platform heals by itself (issue 11; this file grows with it)."""

from __future__ import annotations

import os
import signal
import time

import httpx
import psutil

from .harness import Shipyard


def edge_pid(shipyard: Shipyard) -> int:
    assert shipyard.proc is not None
    return next(p.pid for p in psutil.Process(shipyard.proc.pid).children()
                if p.name() == "caddy" or "caddy" in " ".join(p.cmdline()[:2]))


def test_a_killed_edge_is_back_within_two_seconds_with_its_routes(shipyard: Shipyard) -> None:
    shipyard.cli("apps", "create", "steady")
    shipyard.push(shipyard.checkout("flask-hello", "steady"))
    assert shipyard.get("steady").status_code == 200
    before = edge_pid(shipyard)

    os.kill(before, signal.SIGKILL)
    killed = time.monotonic()
    while True:
        try:
            if shipyard.get("steady").status_code == 200:
                break
        except httpx.TransportError:
            pass
        assert time.monotonic() - killed < 10, "the edge did not come back"
        time.sleep(0.02)
    recovered = time.monotonic() - killed
    print(f"edge back after {recovered:.2f} s")
    assert recovered < 2.0
    assert edge_pid(shipyard) != before
    # Unknown hosts still get the edge's 404, and a new app is routed by the restarted edge.
    assert shipyard.get("nobody").status_code == 404
    shipyard.cli("apps", "create", "later")
    shipyard.push(shipyard.checkout("flask-hello", "later"))
    assert shipyard.get("later").status_code == 200
