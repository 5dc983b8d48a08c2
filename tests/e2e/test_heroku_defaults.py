"""Defaults Heroku users expect, safe by default: the formation, the release command setting, rollback to the
previous release, psql for scripts, a Flask script served by gunicorn, no DYNO, and a database host every
libpq verifies (psycopg2-binary 2.9.3's libpq 14 too), also for apps made before the upgrade."""

from __future__ import annotations

import re
import shutil
import sqlite3
import subprocess
from contextlib import closing
from pathlib import Path

from shipyard.addons.access import has_ipv6_loopback
from shipyard.store.secrets import Cipher, load_or_create_key
from shipyard.store.store import Store

from .harness import APPS, SHIPYARD, Shipyard

# A worker whose Redis is not there (yet): it exits at once.
REDIS_WORKER = ('import sys\nprint("Error: cannot reach redis://localhost:6379 (connection refused)", flush=True)\n'
                "sys.exit(1)\n")


def process_names(shipyard: Shipyard, app: str) -> list[str]:
    return [line.split(":")[0] for line in shipyard.cli("ps", app).out.splitlines()]


def formation(shipyard: Shipyard, app: str) -> str:
    return next(line.split(":", 1)[1].strip() for line in shipyard.cli("apps", "info", app).out.splitlines()
                if line.strip().startswith("Formation:"))


def test_formation_release_command_and_rollback(shipyard: Shipyard) -> None:
    shipyard.cli("apps", "create", "hk")
    work = shipyard.checkout("release-worker", "hk")
    (work / "worker.py").write_text(REDIS_WORKER)
    shipyard.commit(work, "a worker whose Redis is not there")

    # A new app runs web=1; the crashing worker starts at 0 and does not reject the deploy. release: still runs.
    pushed = shipyard.push(work).err
    assert "remote: -----> Running release command: python release.py" in pushed
    assert "remote: -----> worker is not running: scale it with shipyard ps:scale hk worker=1" in pushed
    assert "remote: -----> v1 is live" in pushed
    assert shipyard.get("hk").text == "release-worker v1\n"
    assert process_names(shipyard, "hk") == ["web.1"]
    assert formation(shipyard, "hk") == "web=1 worker=0"

    # Scaling up is health-gated: a worker that cannot start is said so, and the formation stays as it was.
    failed = shipyard.cli("ps:scale", "hk", "worker=1", check=False)
    assert failed.code == 1 and "worker.1 exited with code 1 right after starting." in failed.err
    assert "cannot reach redis://localhost:6379" in failed.err
    assert formation(shipyard, "hk") == "web=1 worker=0" and process_names(shipyard, "hk") == ["web.1"]

    shutil.copy(APPS / "release-worker" / "worker.py", work / "worker.py")
    shipyard.commit(work, "the worker works")
    assert "worker is not running: scale it with shipyard ps:scale hk worker=1" in shipyard.push(work).err
    assert "Scaled hk: web=1, worker=1" in shipyard.cli("ps:scale", "hk", "worker=1").out
    assert process_names(shipyard, "hk") == ["web.1", "worker.1"]

    # A worker the user scaled up that crashes on a later deploy fails it, with the way to deploy without it.
    (work / "worker.py").write_text(REDIS_WORKER)
    shipyard.commit(work, "the worker breaks again")
    broken = shipyard.push(work, check=False)
    assert broken.code != 0
    assert "Release v3 failed: worker.1 exited with code 1 right after starting." in broken.err
    assert "To release without worker for now: `shipyard ps:scale hk worker=0`, then deploy again." in broken.err
    assert shipyard.get("hk").text == "release-worker v2\n"
    shipyard.cli("ps:scale", "hk", "worker=0")
    again = shipyard.push(work).err  # the rejected push left the branch where it was: the same commit deploys
    assert "remote: -----> v4 is live" in again
    assert "worker is not running" not in again  # scaled to 0 on purpose: not repeated at every push
    assert process_names(shipyard, "hk") == ["web.1"]

    # The release command setting (Render's pre-deploy command) wins over the Procfile's release:.
    refused = shipyard.cli("apps", "set", "hk", "--release-command", "gunicorn app:app", check=False)
    assert refused.code == 1 and "The release command starts a server: `gunicorn app:app`." in refused.err
    shipyard.cli("apps", "set", "hk", "--release-command", "echo pre-deploy of $SHIPYARD_RELEASE")
    assert "Release command: echo pre-deploy of $SHIPYARD_RELEASE" in shipyard.cli("apps", "info", "hk").out
    (work / "NOTES.md").write_text("a change\n")
    shipyard.commit(work, "notes")
    pushed = shipyard.push(work).err
    assert ("remote: -----> Release command from the app's settings: echo pre-deploy of $SHIPYARD_RELEASE "
            "(instead of the Procfile's `release: python release.py`)") in pushed
    assert "remote: -----> Running release command: echo pre-deploy of $SHIPYARD_RELEASE" in pushed
    assert "remote:        pre-deploy of v5" in pushed and "migrating the database" not in pushed

    # Rollback without a version: the previous release that went live (v4, then v5), as on Heroku.
    assert "Rolled hk back to v4: now live as v6." in shipyard.cli("rollback", "hk").out
    assert shipyard.get("hk").text == "release-worker v6\n"
    assert "Rolled hk back to v5: now live as v7." in shipyard.cli("rollback", "hk").out
    assert re.search(r"v7 \(current\)\s+succeeded\s+\w+\s+Rollback to v5", shipyard.cli("releases", "hk").out)
    shipyard.cli("apps", "set", "hk", "--release-command", "")
    assert "Release command" not in shipyard.cli("apps", "info", "hk").out


def test_a_flask_script_is_served_by_gunicorn_not_its_debugger(shipyard: Shipyard) -> None:
    shipyard.cli("apps", "create", "tutorial")
    pushed = shipyard.push(shipyard.checkout("flask-main-debug", "tutorial")).err
    assert ("remote: -----> Using start command from main.py (a Flask app: gunicorn serves it, not app.run()'s "
            "development server, whose debugger would let anyone who reaches it run code on the server): "
            "gunicorn --bind 127.0.0.1:$PORT main:app") in pushed
    assert shipyard.get("tutorial").text == "Hello from main.py\n"
    assert shipyard.get("tutorial", "/server").text.startswith("gunicorn/")
    assert shipyard.get("tutorial", "/console").status_code == 404  # Werkzeug's debugger console is not there

    # No DYNO (apps read it as "on Heroku" and redirect to HTTPS); SHIPYARD_PROCESS names the process.
    shown = shipyard.cli("run", "tutorial", "--", "sh", "-c", "echo ${DYNO-unset} $SHIPYARD_PROCESS").out
    assert shown == "unset run.1\n"

    only = shipyard.cli("rollback", "tutorial", check=False)
    assert only.code == 1
    assert "tutorial has no earlier release to roll back to: v1 is the first release that went live." in only.err


def psql(shipyard: Shipyard, app: str, script: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*SHIPYARD, "db", "psql", app], input=script, env=shipyard.env, capture_output=True,
                          text=True, timeout=60)


def test_libpq_14_and_psycopg_3_verify_the_database_and_psql_runs_scripts(shipyard: Shipyard) -> None:
    shipyard.cli("apps", "create", "oldpq", "--postgres")
    assert "PGHOST=localhost" in shipyard.cli("config", "oldpq").out
    pushed = shipyard.push(shipyard.checkout("old-libpq", "oldpq")).err
    assert "remote: -----> Using Python 3.10" in pushed
    for driver in ("psycopg2", "psycopg3"):
        answer = shipyard.get("oldpq", f"/{driver}")
        assert answer.status_code == 200, answer.text
        assert answer.json()["user"] == "app_oldpq" and answer.json()["ssl"] is True
    assert 140000 <= shipyard.get("oldpq", "/psycopg2").json()["libpq"] < 150000  # psycopg2-binary 2.9.3's

    # Why the host is a name: libpq 14 cannot verify the server at the address apps used to get.
    by_address = shipyard.get("oldpq", "/psycopg2", params={"host": "127.0.0.1"})
    assert by_address.status_code == 500
    assert 'server certificate for "localhost" does not match host name "127.0.0.1"' in by_address.json()["error"]
    # localhost may resolve to ::1 first elsewhere: the server listens there and the app's filter lets it through.
    if has_ipv6_loopback():
        for driver in ("psycopg2", "psycopg3"):
            over_ipv6 = shipyard.get("oldpq", f"/{driver}", params={"hostaddr": "::1"})
            assert over_ipv6.status_code == 200, over_ipv6.text

    # psql: a command, a script on stdin, and a script's first error stops it and fails the command.
    assert re.search(r"^\s+42$", shipyard.cli("db", "psql", "oldpq", "-c", "select 40 + 2 as answer").out, re.M)
    script = psql(shipyard, "oldpq", "create table t (n int);\ninsert into t values (1), (2);\nselect count(*) from t;\n")
    assert script.returncode == 0 and re.search(r"^\s+2$", script.stdout, re.M), script.stderr
    failing = psql(shipyard, "oldpq", "select 1;\nselect nope;\nselect 'after the error';\n")
    assert failing.returncode == 3 and 'column "nope" does not exist' in failing.stderr
    assert "after the error" not in failing.stdout


def store_of(shipyard: Shipyard) -> Store:
    data = shipyard.data_dir
    return Store(data / "shipyard.db", Cipher(load_or_create_key(data / "secret.key")), data / "backups" / "store")


def as_before_the_upgrade(shipyard: Shipyard, app: str) -> None:
    """What a Shipyard of before this change left: database variables naming 127.0.0.1, no formation written
    (every type ran one instance), the schema at revision 0001."""
    store = store_of(shipyard)
    try:
        config = store.get_config(app)
        store.update_config(app, {"PGHOST": "127.0.0.1",
                                  "DATABASE_URL": config["DATABASE_URL"].replace("@localhost:", "@127.0.0.1:")}, [])
    finally:
        store.close()
    with closing(sqlite3.connect(shipyard.data_dir / "shipyard.db")) as db:
        db.execute("UPDATE apps SET formation = '{}'")
        db.execute("ALTER TABLE apps DROP COLUMN release_command")
        db.execute("ALTER TABLE apps DROP COLUMN redirect_https")  # 0003's
        db.execute("ALTER TABLE apps DROP COLUMN hsts")
        db.execute("DROP TABLE domains")
        db.execute("ALTER TABLE deploys DROP COLUMN error")  # 0004's
        db.execute("ALTER TABLE deploys DROP COLUMN hint")
        db.execute("DROP TABLE metrics")  # 0005's
        db.execute("ALTER TABLE apps DROP COLUMN autoscale")  # 0006's
        db.execute("UPDATE alembic_version SET version_num = '0001'")
        db.commit()


def test_an_upgrade_keeps_workers_running_and_moves_databases_to_localhost(tmp_path: Path) -> None:
    shipyard = Shipyard(tmp_path)
    shipyard.start()
    try:
        shipyard.cli("apps", "create", "legacy", "--postgres")
        shipyard.push(shipyard.checkout("release-worker", "legacy"))
        shipyard.cli("ps:scale", "legacy", "worker=1")
        shipyard.stop()
        as_before_the_upgrade(shipyard, "legacy")

        shipyard.start()
        shipyard.wait_for(lambda: "worker.1: up" in shipyard.cli("ps", "legacy").out, timeout=60)
        assert process_names(shipyard, "legacy") == ["web.1", "worker.1"]
        assert formation(shipyard, "legacy") == "web=1 worker=1"
        shown = shipyard.cli("config", "legacy").out
        assert "PGHOST=localhost" in shown and "@localhost:" in shown
        assert "The database's host is now localhost" in shipyard.cli("logs", "legacy").out
        shipyard.cli("config", "set", "legacy", "GREETING=hi")  # the next release gets it, workers and all
        assert process_names(shipyard, "legacy") == ["web.1", "worker.1"]
        env = shipyard.cli("run", "legacy", "--", "sh", "-c", "echo $PGHOST").out
        assert env == "localhost\n"
    finally:
        shipyard.kill_all()

