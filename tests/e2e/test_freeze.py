"""The frozen tier (issue 15): an idle --min 0 app is frozen (no CPU, memory kept), the next request thaws it in
milliseconds and is answered with the right body, and gunicorn's master, frozen longer than its worker timeout,
does not kill its workers on thaw, nor when the app goes on to zero (its idle sync workers' heartbeats are
refreshed at the thaw)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from .harness import Shipyard

pytestmark = pytest.mark.e2e
FREEZE_AFTER = 2
ZERO_AFTER = 14


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shipyard]:
    shipyard = Shipyard(tmp_path_factory.mktemp("freeze"))
    shipyard.env.update(SHIPYARD_FREEZE_AFTER=str(FREEZE_AFTER), SHIPYARD_SCALE_TO_ZERO_AFTER=str(ZERO_AFTER))
    shipyard.start()
    try:
        yield shipyard
    finally:
        shipyard.kill_all()


def states(platform: Shipyard, app: str) -> list[str]:
    return [i["state"] for i in platform.app_info(app)["instances"] if i["name"].startswith("web.")]


def test_an_idle_app_is_frozen_and_a_request_thaws_it(platform: Shipyard) -> None:
    platform.cli("apps", "create", "icy")
    platform.push(platform.checkout("slow-instance", "icy"))
    # A worker timeout shorter than the freeze: thawed all at once, gunicorn's master would kill its workers.
    platform.cli("config", "set", "icy", "GUNICORN_CMD_ARGS=--timeout 2")
    platform.cli("scale", "icy", "web", "--min", "0", "--max", "1")
    assert platform.wait_for(lambda: states(platform, "icy") == ["frozen"], timeout=FREEZE_AFTER + 15)
    assert "web.1: frozen" in platform.cli("ps", "icy").out
    info = platform.cli("apps", "info", "icy").out
    assert "icy  release v2  frozen" in info and "frozen (no CPU)" in info, info
    time.sleep(4)  # frozen for longer than gunicorn's --timeout 2

    started = time.monotonic()
    answer = platform.get("icy")
    thawed_in = time.monotonic() - started
    assert answer.status_code == 200 and answer.text == "slow-instance on web.1\n", answer.text
    assert thawed_in < 1.0, thawed_in  # a thaw, not a start
    assert states(platform, "icy") == ["up"]
    for _ in range(5):
        assert platform.get("icy", "/work?ms=1").status_code == 200
    time.sleep(3)  # what gunicorn's master would do on its next checks
    logs = platform.cli("logs", "icy").out
    assert "WORKER TIMEOUT" not in logs, logs
    assert platform.get("icy").status_code == 200


def test_two_sync_workers_survive_a_long_freeze_and_the_way_to_zero(platform: Shipyard) -> None:
    # flask-hello: gunicorn's sync workers, two of them; a request wakes only one, the other sleeps on in a wait
    # that resumes with the time it had left when it was frozen.
    platform.cli("apps", "create", "drowsy")
    platform.cli("config", "set", "drowsy", "GUNICORN_CMD_ARGS=--timeout 4")
    platform.push(platform.checkout("flask-hello", "drowsy"))
    platform.cli("scale", "drowsy", "web", "--min", "0", "--max", "1")
    assert platform.wait_for(lambda: states(platform, "drowsy") == ["frozen"], timeout=FREEZE_AFTER + 15)
    time.sleep(6)  # frozen for longer than --timeout 4
    assert platform.get("drowsy").text == "Hello from flask-hello v1\n"
    time.sleep(3)  # the master's next checks of both workers' heartbeats
    assert "WORKER TIMEOUT" not in platform.cli("logs", "drowsy").out
    # Idle again: frozen, then stopped (thawed first, so it can act on SIGTERM) without a worker taken for hung.
    assert platform.wait_for(lambda: platform.app_info("drowsy")["formation"]["web"] == 0, timeout=ZERO_AFTER + 20)
    assert platform.wait_for(lambda: "Process exited" in platform.cli("logs", "drowsy", "-n", "5").out, timeout=10)
    logs = platform.cli("logs", "drowsy").out
    assert "WORKER TIMEOUT" not in logs and "Handling signal: term" in logs, logs
