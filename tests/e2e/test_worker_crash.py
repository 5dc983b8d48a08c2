"""A worker the user scaled up that crashes at start on a new release fails the deploy, the previous release keeps
serving, and the hint says how to release without the worker (Heroku's formation: web=1, other types at 0)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from .harness import APPS, Shipyard


def ps(shipyard: Shipyard, app: str) -> dict[str, str]:
    """`shipyard ps`: process name → the rest of its line (`up  v1  for 3s  restarts 0`)."""
    return {name: rest.strip() for name, _, rest in
            (line.partition(":") for line in shipyard.cli("ps", app).out.splitlines() if line.strip())}


def formation(shipyard: Shipyard, app: str) -> str:
    return next(line.split(":", 1)[1].strip() for line in shipyard.cli("apps", "info", app).out.splitlines()
                if line.strip().startswith("Formation:"))


def replace_tree(work: Path, sample: str) -> None:
    """The working copy becomes the sample (files it no longer has are deleted), keeping its git history."""
    for path in work.iterdir():
        if path.name != ".git":
            shutil.rmtree(path) if path.is_dir() else path.unlink()
    shutil.copytree(APPS / sample, work, dirs_exist_ok=True)


def test_a_scaled_up_worker_that_crashes_fails_the_deploy_with_the_way_out(shipyard: Shipyard) -> None:
    app = "jobs"
    shipyard.cli("apps", "create", app)

    # v1: a web and a worker that keeps running; the worker starts at 0 until the user scales it up.
    work = shipyard.checkout("release-worker", app)
    pushed = shipyard.push(work).err
    assert "remote: -----> v1 is live" in pushed
    assert f"remote: -----> worker is not running: scale it with shipyard ps:scale {app} worker=1" in pushed
    assert f"Scaled {app}: web=1, worker=1" in shipyard.cli("ps:scale", app, "worker=1").out
    assert formation(shipyard, app) == "web=1 worker=1"
    assert list(ps(shipyard, app)) == ["web.1", "worker.1"]
    assert shipyard.get(app).text == "release-worker v1\n"

    # v2 moves the jobs to a Redis queue; no Redis is attached, so the worker dies at start.
    replace_tree(work, "worker-crashes")
    shipyard.commit(work, "Move background jobs to a Redis queue")
    broken = shipyard.push(work, check=False)
    assert broken.code != 0, broken.text
    assert "Release v2 failed: worker.1 exited with code 1 right after starting." in broken.err, broken.err
    assert "ConnectionRefusedError" in broken.err  # the worker's own traceback, from its log lines
    hint = [line for line in broken.err.splitlines() if f"ps:scale {app} worker=0" in line]
    assert hint, broken.err
    assert f"To release without worker for now: `shipyard ps:scale {app} worker=0`, then deploy again." in hint[0]
    assert "v2 is live" not in broken.err

    # The previous release keeps serving, its worker too, and the push left the branch where it was.
    assert shipyard.get(app).text == "release-worker v1\n"
    processes = ps(shipyard, app)
    assert list(processes) == ["web.1", "worker.1"]
    assert all(" v1 " in f" {state} " for state in processes.values()), processes
    assert shipyard.app_info(app)["release"] == 1
    releases = shipyard.cli("releases", app).out
    assert re.search(r"^\s*v2\s+failed\b", releases, re.M), releases
    assert re.search(r"^\s*v1 \(current\)\s+succeeded\b", releases, re.M), releases
    assert shipyard.git(work, "ls-remote", "shipyard", "refs/heads/main").out.split()[0] != \
        shipyard.git(work, "rev-parse", "HEAD").out.strip()

    # The way out the hint gives: scale the worker to 0, push the same commit again; the web goes live.
    assert f"Scaled {app}: web=1, worker=0" in shipyard.cli("ps:scale", app, "worker=0").out
    again = shipyard.push(work).err
    assert "remote: -----> v3 is live" in again, again
    assert "worker is not running" not in again  # scaled to 0 on purpose: not nagged about
    assert shipyard.get(app).text == "worker-crashes v3\n"
    assert list(ps(shipyard, app)) == ["web.1"]
    assert formation(shipyard, app) == "web=1 worker=0"
    assert re.search(r"^\s*v3 \(current\)\s+succeeded\b", shipyard.cli("releases", app).out, re.M)
