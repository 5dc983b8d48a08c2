"""The store is the truth: after a restart of the platform every app comes back, and nothing is orphaned."""

from __future__ import annotations

import signal

from .harness import Shipyard


def test_restart_brings_apps_back_and_leaves_no_orphans(tmp_path) -> None:
    shipyard = Shipyard(tmp_path)
    shipyard.start()
    try:
        shipyard.cli("apps", "create", "todo")
        shipyard.push(shipyard.checkout("flask-hello", "todo"))
        shipyard.cli("config", "set", "todo", "GREETING=back")
        assert shipyard.get("todo").text == "back from flask-hello v1\n"
        old_pid = shipyard.app_info("todo")["instances"][0]["pid"]

        assert shipyard.stop(signal.SIGTERM) == 0  # asserts that no child survived
        assert not (shipyard.data_dir / "platform.json").exists()

        shipyard.start()
        shipyard.wait_for(lambda: shipyard.get("todo").status_code == 200, timeout=60)
        assert shipyard.get("todo").text == "back from flask-hello v1\n"
        info = shipyard.app_info("todo")
        assert info["release"] == 2 and info["instances"][0]["pid"] != old_pid
    finally:
        shipyard.kill_all()
