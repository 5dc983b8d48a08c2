"""Release phase, background workers, rollback."""

from __future__ import annotations

import re

from .harness import Shipyard


def test_release_phase_workers_and_rollback(shipyard: Shipyard) -> None:
    shipyard.cli("apps", "create", "rel")
    pushed = shipyard.push(shipyard.checkout("release-worker", "rel"))
    assert "remote: -----> Running release command: python release.py" in pushed.err
    assert "remote:        migrating the database for v1" in pushed.err
    assert "remote: -----> Release command succeeded" in pushed.err
    assert shipyard.get("rel").text == "release-worker v1\n"
    ps = shipyard.cli("ps", "rel").out
    assert "web.1: up  v1" in ps and "worker.1: up  v1" in ps
    shipyard.wait_for(lambda: "app[worker.1]: worker processed job 2" in shipyard.cli("logs", "rel").out)

    # A failing release command (a bad migration): the release never goes live.
    failed = shipyard.cli("config", "set", "rel", "RELEASE_EXIT=3", check=False)
    assert failed.code == 1
    assert "Release v2 failed: the release command `python release.py` exited with code 3." in failed.err
    assert shipyard.get("rel").text == "release-worker v1\n"
    assert re.search(r"v2\s+failed", shipyard.cli("releases", "rel").out)
    assert "migration 0042_add_column failed" in shipyard.cli("logs", "rel").out

    shipyard.cli("config", "set", "rel", "RELEASE_EXIT=0")
    assert shipyard.get("rel").text == "release-worker v3\n"

    rolled = shipyard.cli("rollback", "rel", "v1").out
    assert "Rolled rel back to v1: now live as v4." in rolled
    assert shipyard.get("rel").text == "release-worker v4\n"
    assert "RELEASE_EXIT" not in shipyard.cli("config", "rel").out
    assert "Rollback to v1" in shipyard.cli("releases", "rel").out
    assert "worker.1: up  v4" in shipyard.cli("ps", "rel").out
