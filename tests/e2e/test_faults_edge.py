"""An edge that hangs (here: SIGSTOP) is treated as dead: killed, restarted with its routes (issue 11)."""

from __future__ import annotations

import os
import signal
import time

import httpx

from .harness import Shipyard
from .test_faults import edge_pid


def test_a_hung_edge_is_replaced_within_a_few_seconds(shipyard: Shipyard) -> None:
    shipyard.cli("apps", "create", "patient")
    shipyard.push(shipyard.checkout("flask-hello", "patient"))
    hung = edge_pid(shipyard)
    os.kill(hung, signal.SIGSTOP)
    stopped = time.monotonic()
    try:
        while True:
            try:
                if shipyard.get("patient", timeout=1).status_code == 200 and edge_pid(shipyard) != hung:
                    break
            except (httpx.TransportError, StopIteration):
                pass
            assert time.monotonic() - stopped < 10, "the hung edge was not replaced"
            time.sleep(0.05)
    finally:
        if os.path.exists(f"/proc/{hung}"):
            os.kill(hung, signal.SIGKILL)
    recovered = time.monotonic() - stopped
    print(f"hung edge replaced after {recovered:.2f} s")
    assert recovered < 5
    assert "stopped answering its runtime API; restarting it" in (shipyard.data_dir / "logs" / "edge.log").read_text()
    assert shipyard.app_info("patient")["state"] == "up"
    assert shipyard.app_info("patient")["instances"][0]["routed"]
    edge = next(layer for layer in shipyard.api("GET", "/doctor").json() if layer["name"] == "edge")
    assert edge["active"] and "restarted 1 time(s)" in edge["detail"]
