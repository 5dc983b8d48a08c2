"""Readiness and liveness (issue 11): a broken release never replaces a working one, a hung instance is
restarted, and a crash of an app's only instance costs only the requests in flight."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator

import httpx
import psutil
import pytest

from .harness import Shipyard
from .load import Load
from .test_bad_input import replace_tree


@pytest.fixture(scope="module")
def shipyard(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shipyard]:
    platform = Shipyard(tmp_path_factory.mktemp("readiness"))
    # Shorter than the defaults (30 s, 10 s) so a hang is found quickly here; the rules are the same.
    platform.env["SHIPYARD_HANG_LIMIT"] = "6"
    platform.env["SHIPYARD_LIVENESS_INTERVAL"] = "1"
    platform.start()
    try:
        yield platform
    finally:
        platform.kill_all()


def push_broken(shipyard: Shipyard, work, sample: str) -> tuple[str, float]:  # type: ignore[no-untyped-def]
    replace_tree(work, sample)
    shipyard.commit(work, sample)
    started = time.monotonic()
    result = shipyard.push(work, check=False)
    assert result.code != 0, result.text
    return result.err, time.monotonic() - started


def release_step_seconds(shipyard: Shipyard, app: str) -> float:
    """How long the failed deploy's start + health check took (the build before it is not readiness)."""
    deploy = shipyard.api("GET", f"/apps/{app}/deploys").json()[0]
    steps = [s for s in deploy["steps"] if s["name"] in ("start instances", "health check")]
    return max(s["finished"] for s in steps) - min(s["started"] for s in steps)


def test_each_readiness_failure_names_its_cause_and_the_previous_release_keeps_serving(shipyard: Shipyard) -> None:
    shipyard.cli("apps", "create", "keep")
    work = shipyard.checkout("flask-hello", "keep")
    shipyard.push(work)
    v1 = "Hello from flask-hello v1\n"
    with Load(shipyard, "keep") as load:
        # gunicorn listens before its workers import the app; the import fails a second later.
        err, _ = push_broken(shipyard, work, "broken-late-import")
        assert "after opening $PORT, before it answered HTTP" in err
        assert "ModuleNotFoundError: No module named 'missing_module'" in err
        assert "Python could not import `missing_module`" in err

        err, _ = push_broken(shipyard, work, "broken-500")
        assert "web.1 answered 500 to GET / for 5 s (a server error" in err
        assert "RuntimeError: settings.SESSION_BACKEND is not configured" in err

        err, _ = push_broken(shipyard, work, "broken-disallowed-host")
        assert "web.1 answered 400 Bad Request for its hostname keep.localhost" in err
        assert "Django refused the app's hostname keep.localhost" in err
        assert "ALLOWED_HOSTS" in err and "CSRF_TRUSTED_ORIGINS" in err

        # Listening, but on Flask's default 127.0.0.1:5000: known within ~3 s, not after the boot timeout.
        err, _ = push_broken(shipyard, work, "broken-wrong-port")
        assert "The app listens on 127.0.0.1:5000, not on $PORT" in err
        assert release_step_seconds(shipyard, "keep") < 6  # Python and Flask start, then 1.5 s elsewhere

        err, _ = push_broken(shipyard, work, "broken-hang")
        assert "but did not answer GET / for 6 s: it hangs" in err
        assert release_step_seconds(shipyard, "keep") < 13  # two 5 s probes without an answer
    assert not load.no_response and not load.error_statuses, (load.no_response[:3], load.error_statuses[:3])
    assert set(load.bodies) == {v1} and load.sent > 100
    releases = {r["version"]: r["status"] for r in shipyard.api("GET", "/apps/keep/releases").json()}
    assert releases == {1: "succeeded", 2: "failed", 3: "failed", 4: "failed", 5: "failed", 6: "failed"}
    assert shipyard.app_info("keep")["state"] == "up"


def web_pid(shipyard: Shipyard, app: str) -> int:
    [instance] = [i for i in shipyard.app_info(app)["instances"] if i["name"] == "web.1"]
    return instance["pid"]


def gunicorn_master(root_pid: int) -> int:
    """The app's own process inside its sandbox (what a crash or the OOM killer takes down)."""
    tree = psutil.Process(root_pid).children(recursive=True)
    return next(p.pid for p in tree if "gunicorn" in " ".join(p.cmdline()[:2]) and
                "gunicorn" not in " ".join(p.parent().cmdline()[:2]))


def test_a_crash_of_the_only_instance_costs_only_the_requests_in_flight(shipyard: Shipyard) -> None:
    shipyard.cli("apps", "create", "solo")
    work = shipyard.checkout("flask-hello", "solo")
    (work / "Procfile").write_text("web: gunicorn --bind 0.0.0.0:$PORT app:app\n")
    (work / "requirements.txt").write_text("flask>=3\ngunicorn\n")
    shipyard.commit(work, "gunicorn")
    shipyard.push(work)
    with Load(shipyard, "solo") as load:
        time.sleep(1)
        os.kill(gunicorn_master(web_pid(shipyard, "solo")), signal.SIGKILL)
        killed = time.monotonic()
        shipyard.wait_for(lambda: shipyard.app_info("solo")["instances"][0]["restarts"] == 1, timeout=10)
        shipyard.wait_for(lambda: shipyard.app_info("solo")["instances"][0]["state"] == "up", timeout=10)
        back = time.monotonic() - killed
        time.sleep(1)
    failed = len(load.no_response) + len(load.error_statuses)
    print(f"single instance kill -9: up again after {back:.2f} s; {failed} of {load.sent} requests failed; "
          f"slowest {max(load.latencies):.2f} s")
    assert failed <= 4, (load.no_response[:4], load.error_statuses[:4])  # 4 clients: at most one in flight each
    assert back < 5
    info = shipyard.app_info("solo")["instances"][0]
    assert info["last_failure"] == "exited with status 137" or info["last_failure"].startswith("exited")
    assert "last restart: exited" in shipyard.cli("ps", "solo").out


def test_an_instance_that_stops_answering_is_restarted_and_ps_says_why(shipyard: Shipyard) -> None:
    shipyard.cli("apps", "create", "freezer")
    work = shipyard.checkout("flask-hello", "freezer")
    (work / "Procfile").write_text("web: gunicorn --bind 0.0.0.0:$PORT --workers 1 --timeout 300 app:app\n")
    (work / "requirements.txt").write_text("flask>=3\ngunicorn\n")
    (work / "app.py").write_text((work / "app.py").read_text() + (
        "\n\n@app.get('/freeze')\ndef freeze():\n    import time\n    time.sleep(3600)\n"))
    shipyard.commit(work, "a page that hangs its only worker")
    shipyard.push(work)
    with pytest.raises(httpx.ReadTimeout):  # it never answers: that is the point
        httpx.get(f"http://127.0.0.1:{shipyard.edge_port}/freeze", timeout=1,
                  headers={"Host": f"freezer.localhost:{shipyard.edge_port}"})
    shipyard.wait_for(lambda: shipyard.app_info("freezer")["instances"][0]["restarts"] == 1, timeout=40)
    shipyard.wait_for(lambda: shipyard.app_info("freezer")["instances"][0]["state"] == "up", timeout=20)
    assert shipyard.get("freezer").text == "Hello from flask-hello v1\n"
    ps = shipyard.cli("ps", "freezer").out
    assert "last restart: did not answer 3 health checks in a row (5 s each) and was restarted" in ps
    logs = shipyard.cli("logs", "freezer", "-n", "100").out
    assert "Health check 1 of 3 failed: no response within 5 s" in logs
