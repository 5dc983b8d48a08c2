"""Release phase, background workers, rollback."""

from __future__ import annotations

import os
import re
import shutil
import subprocess

from .harness import Shipyard


def test_release_phase_workers_and_rollback(shipyard: Shipyard) -> None:
    shipyard.cli("apps", "create", "rel")
    pushed = shipyard.push(shipyard.checkout("release-worker", "rel"))
    assert "remote: -----> Running release command: python release.py" in pushed.err
    assert "remote:        migrating the database for v1" in pushed.err
    assert "remote: -----> Release command succeeded" in pushed.err
    # As on Heroku, a new app runs one web process; other types wait to be scaled.
    assert "remote: -----> worker is not running: scale it with shipyard ps:scale rel worker=1" in pushed.err
    assert shipyard.get("rel").text == "release-worker v1\n"
    assert [line.split(":")[0] for line in shipyard.cli("ps", "rel").out.splitlines()] == ["web.1"]
    assert "Scaled rel: web=1, worker=1" in shipyard.cli("ps:scale", "rel", "worker=1").out
    ps = shipyard.cli("ps", "rel").out
    assert "web.1: up  v1" in ps and "worker.1: up  v1" in ps
    assert re.search(r"^web\.1: up  v1  for \d+s  restarts 0  in flight 0(  CPU [\d.]+)?(  \d+ MB)?$", ps, re.MULTILINE)
    shipyard.wait_for(lambda: "app[worker.1]: worker processed job 2" in shipyard.cli("logs", "rel").out)

    # A failing release command (a bad migration): the release never goes live.
    failed = shipyard.cli("config", "set", "rel", "RELEASE_EXIT=3", check=False)
    assert failed.code == 1
    assert "Release v2 failed: the release command `python release.py` exited with code 3." in failed.err
    assert "The change stays in the config (the next push uses it); undo it with " in failed.err
    assert "`shipyard config unset rel RELEASE_EXIT`" in failed.err
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

    # Scale out and back, restart: health-gated, the release stays the same.
    assert "Scaled rel: web=3, worker=0" in shipyard.cli("ps:scale", "rel", "web=3", "worker=0").out
    ps = shipyard.cli("ps", "rel").out
    assert [line.split(":")[0] for line in ps.splitlines()] == ["web.1", "web.2", "web.3"]
    assert {shipyard.get("rel").text for _ in range(6)} == {"release-worker v4\n"}
    shipyard.cli("ps:scale", "rel", "web=1")
    shipyard.wait_for(lambda: len(shipyard.app_info("rel")["instances"]) == 1)
    unknown = shipyard.cli("ps:scale", "rel", "clock=1", check=False)
    assert unknown.code == 1 and "rel has no process type clock." in unknown.err
    before = shipyard.app_info("rel")["instances"][0]["pid"]
    shipyard.cli("restart", "rel", "web")
    after = shipyard.app_info("rel")["instances"]
    assert [i["name"] for i in after] == ["web.1"] and after[0]["pid"] != before and after[0]["release"] == 4


    # Every deploy is kept as data: its steps with times, status and logs.
    deploys = shipyard.cli("deploys", "rel", "-n", "10", "--logs").out
    assert "Rollback to v1  v4  succeeded" in deploys
    assert re.search(r"Set RELEASE_EXIT config vars  v2  failed", deploys)
    assert re.search(r"release phase\s+failed", deploys)
    assert "migration 0042_add_column failed" in deploys
    push = deploys.split("Push of ")[1]
    for step in ("receive", "pre-flight", "build", "release phase", "start instances", "health check", "switch"):
        assert re.search(rf"  {step}\s+succeeded\s+[0-9.]+ s", push), step
    assert re.search(r"  drain\s+succeeded\s+[0-9.]+ s", deploys.split("Push of ")[0])  # the v1 push had nothing to drain


ADD_PRIORITY = """\"\"\"add a priority to todos

Revision ID: 0003
Revises: 0002
\"\"\"

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"


def upgrade():
    op.add_column("todo", sa.Column("priority", sa.Integer(), nullable=False{default}))
"""


def test_flask_todo_migrations_worker_seed_failing_migration_and_rollback(shipyard: Shipyard) -> None:
    """The Procfile of a real Flask-Migrate app: web, worker, `release: flask db upgrade`."""
    shipyard.cli("apps", "create", "todo", "--postgres")
    work = shipyard.checkout("flask-todo", "todo")
    pushed = shipyard.push(work).err
    assert "remote: -----> Running release command: flask db upgrade" in pushed
    assert "Running upgrade  -> 0001, create the todo table" in pushed
    assert "Running upgrade 0001 -> 0002, create the job table for the worker" in pushed
    shipyard.cli("ps:scale", "todo", "worker=1")
    ps = shipyard.cli("ps", "todo").out
    assert "web.1: up  v1" in ps and "worker.1: up  v1" in ps

    # A one-off seed script, in the app's environment (DATABASE_URL); exit codes pass through.
    assert shipyard.cli("run", "todo", "--", "python", "seed.py").out == "seeded 3 todos\n"
    again = shipyard.cli("run", "todo", "--", "python", "seed.py", check=False)
    assert again.code == 1 and "already seeded" in again.text
    assert [t["title"] for t in shipyard.get("todo", "/todos").json()] == ["milk", "eggs", "bread"]

    # The worker takes jobs from the database.
    job = shipyard.get_json_post("todo", "/jobs", {"payload": "shipyard"}).json()
    shipyard.wait_for(lambda: shipyard.get("todo", f"/jobs/{job['id']}").json()["result"] == "draypihs")
    assert f"app[worker.1]: worker processed job {job['id']}" in shipyard.cli("logs", "todo").out

    # A migration that fails on the existing rows: the release never goes live, v1 keeps serving.
    migration = work / "migrations" / "versions" / "0003_add_priority.py"
    migration.write_text(ADD_PRIORITY.format(default=""))
    shipyard.commit(work, "add priority")
    failed = shipyard.push(work, check=False)
    assert failed.code != 0
    assert 'column "priority" of relation "todo" contains null values' in failed.err
    assert "Release v2 failed: the release command `flask db upgrade` exited with code 1." in failed.err
    assert [t["title"] for t in shipyard.get("todo", "/todos").json()] == ["milk", "eggs", "bread"]
    assert re.search(r"v2\s+failed", shipyard.cli("releases", "todo").out)
    assert "web.1: up  v1" in shipyard.cli("ps", "todo").out

    # Fixed with a default: the migration runs, and a rollback runs the (now no-op) release phase again.
    migration.write_text(ADD_PRIORITY.format(default=', server_default="0"'))
    shipyard.commit(work, "add priority with a default")
    assert "Running upgrade 0002 -> 0003, add a priority to todos" in shipyard.push(work).err
    assert shipyard.cli("run", "todo", "--", "flask", "db", "current").out.strip().endswith("0003 (head)")
    shipyard.cli("config", "set", "todo", "FEATURE=on")
    assert "now live as v5" in shipyard.cli("rollback", "todo", "v3").out
    assert "FEATURE" not in shipyard.cli("config", "todo").out
    assert [t["title"] for t in shipyard.get("todo", "/todos").json()] == ["milk", "eggs", "bread"]
    assert "worker.1: up  v5" in shipyard.cli("ps", "todo").out

    # Back past a migration: v1's `flask db upgrade` does not know 0003, and the rollback says how to skip it.
    past = shipyard.cli("rollback", "todo", "v1", check=False)
    assert past.code == 1
    assert "Release v6 failed: the release command `flask db upgrade` exited with code 1." in past.err
    assert "`shipyard rollback todo v1 --skip-release-phase`" in past.err
    assert "Can't locate revision identified by '0003'" in shipyard.cli("logs", "todo").out
    assert "worker.1: up  v5" in shipyard.cli("ps", "todo").out
    assert "now live as v7" in shipyard.cli("rollback", "todo", "v1", "--skip-release-phase").out
    assert [t["title"] for t in shipyard.get("todo", "/todos").json()] == ["milk", "eggs", "bread"]


def test_one_off_commands(shipyard: Shipyard) -> None:
    shipyard.cli("apps", "create", "oneoff")
    shipyard.push(shipyard.checkout("release-worker", "oneoff"))
    ok = shipyard.cli("run", "oneoff", "--", "python", "-c", "import os; print('seeded', os.environ['SHIPYARD_RELEASE'])")
    assert ok.out == "seeded v1\n"
    failed = shipyard.cli("run", "oneoff", "--", "python", "-c", "import sys; sys.exit(7)", check=False)
    assert failed.code == 7
    assert "app[run.1]: seeded v1" in shipyard.cli("logs", "oneoff").out
    shipyard.cli("apps", "create", "norelease")
    none = shipyard.cli("run", "norelease", "--", "true", check=False)
    assert none.code == 1 and "norelease has no release to run commands in yet." in none.err


def test_health_path_gates_the_switch(shipyard: Shipyard) -> None:
    shipyard.cli("apps", "create", "healthy", "--boot-timeout", "3")
    shipyard.cli("apps", "set", "healthy", "--health-path", "/healthz")
    shipyard.push(shipyard.checkout("release-worker", "healthy"))
    assert shipyard.get("healthy").text == "release-worker v1\n"
    failed = shipyard.cli("config", "set", "healthy", "HEALTH_FAIL=1", check=False)
    assert failed.code == 1
    assert "web.1's health check /healthz answered 500 until the 3 s deadline." in failed.err
    assert shipyard.get("healthy").text == "release-worker v1\n"


def test_only_the_kept_releases_can_be_rolled_back_to(tmp_path) -> None:
    shipyard = Shipyard(tmp_path)
    shipyard.env["SHIPYARD_RELEASES_KEPT"] = "2"
    shipyard.start()
    try:
        shipyard.cli("apps", "create", "short")
        work = shipyard.checkout("flask-hello", "short")
        shipyard.push(work)
        for n in (2, 3):
            (work / "app.py").write_text((work / "app.py").read_text().replace(f'VERSION = "{n - 1}"', f'VERSION = "{n}"'))
            shipyard.commit(work, f"v{n}")
            shipyard.push(work)
        slugs = [p for p in (shipyard.data_dir / "slugs" / "short").iterdir() if p.name != "venvs"]
        assert len(slugs) == 2
        refused = shipyard.cli("rollback", "short", "v1", check=False)
        assert refused.code == 1 and "v1's slug is no longer kept (the newest 2 releases are)." in refused.err
        shipyard.cli("rollback", "short", "v2")
        assert shipyard.get("short").text == "Hello from flask-hello v2\n"
    finally:
        shipyard.kill_all()


def test_concurrent_pushes_are_serialised(shipyard: Shipyard) -> None:
    shipyard.cli("apps", "create", "twopush")
    first = shipyard.checkout("flask-hello", "twopush")
    shipyard.push(first)
    second = shipyard.root / "work" / "twopush-second"
    shutil.copytree(first, second)
    app_py = first / "app.py"
    app_py.write_text(app_py.read_text().replace('VERSION = "1"', 'VERSION = "2"'))
    shipyard.commit(first, "v2")
    (second / "NOTES.md").write_text("a teammate's change\n")
    (second / "logo.bin").write_bytes(os.urandom(200_000))  # a pack over 64 KiB: git probes with a flush first
    shipyard.commit(second, "notes")

    pushing = subprocess.Popen(["git", "push", "shipyard", "main"], cwd=first, env=shipyard.env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    assert pushing.stderr is not None
    first_log = []
    for line in pushing.stderr:  # the first push is deploying once the platform logs its steps
        first_log.append(line)
        if line.startswith("remote: ----->"):
            break
    late = shipyard.git(second, "-c", "http.postBuffer=65536", "push", "shipyard", "main", check=False)
    first_log += pushing.stderr.read()
    assert pushing.wait(timeout=300) == 0, "".join(first_log)

    assert late.code != 0
    assert "remote: -----> Another push to twopush is still deploying: this push waits for it to finish" in late.err
    assert "another push landed while this one waited. Nothing from this push was deployed." in late.err
    assert shipyard.get("twopush").text == "Hello from flask-hello v2\n"
    releases = shipyard.cli("releases", "twopush").out
    assert re.search(r"v2 \(current\)\s+succeeded\s+[0-9a-f]{7}\s+Deploy [0-9a-f]{7} by Test: v2\s", releases)
    assert not re.search(r"v3\s", releases)

    # The fix the message gives: take the other push's commit, push again.
    shipyard.git(second, "pull", "-q", "--rebase", "shipyard", "main")
    shipyard.push(second)
    assert shipyard.get("twopush").text == "Hello from flask-hello v2\n"
    assert re.search(r"v3\s", shipyard.cli("releases", "twopush").out)
