"""The store is the truth: after a restart of the platform every app comes back, and nothing is orphaned."""

from __future__ import annotations

import signal
import subprocess

from .harness import Shipyard, pid_alive


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


def test_a_platform_killed_mid_deploy_fails_that_release_and_leaves_nothing_behind(tmp_path) -> None:
    shipyard = Shipyard(tmp_path)
    shipyard.start()
    try:
        shipyard.cli("apps", "create", "todo")
        work = shipyard.checkout("flask-hello", "todo")
        shipyard.push(work)
        shipyard.cli("apps", "set", "todo", "--start-command", "sleep 60; gunicorn --bind 127.0.0.1:$PORT app:app")
        (work / "app.py").write_text((work / "app.py").read_text().replace('VERSION = "1"', 'VERSION = "2"'))
        shipyard.commit(work, "v2 that boots slowly")
        push = subprocess.Popen(["git", "push", "shipyard", "main"], cwd=work, env=shipyard.env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        shipyard.wait_for(lambda: "sleep 60" in shipyard.cli("logs", "todo", "-n", "20").out, timeout=60)
        shipyard.remember_children()
        shipyard.proc.kill()  # kill -9 of `shipyard up` while v2 boots
        shipyard.proc.wait()
        assert push.wait(timeout=30) != 0
        try:
            shipyard.wait_for(lambda: not any(pid_alive(p) for p in shipyard.seen_pids), timeout=15)
        except AssertionError:
            alive = [p for p in shipyard.seen_pids if pid_alive(p)]
            raise AssertionError({p: open(f"/proc/{p}/cmdline").read().replace(chr(0), " ") for p in alive})
        shipyard.proc = None

        shipyard.start()
        releases = {r["version"]: r["status"] for r in shipyard.api("GET", "/apps/todo/releases").json()}
        assert releases == {1: "succeeded", 2: "interrupted"}
        deploy = shipyard.api("GET", "/apps/todo/deploys").json()[0]
        assert deploy["status"] == "interrupted" and deploy["steps"][-1]["name"] == "interrupted"
        assert "Shipyard stopped while this deploy was running" in deploy["steps"][-1]["log"][0]
        assert not list((shipyard.data_dir / "tmp").glob("src-*"))
        shipyard.wait_for(lambda: shipyard.get("todo").status_code == 200, timeout=60)
        assert shipyard.get("todo").text == "Hello from flask-hello v1\n"
    finally:
        shipyard.kill_all()
