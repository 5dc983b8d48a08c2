"""The README's quickstart, as a new user runs it: up, create, git push, curl, logs, config, apps, destroy."""

from __future__ import annotations

import os
import re
import signal
import stat
import subprocess
import threading
import time

import httpx

from .harness import SHIPYARD, Shipyard


def test_up_announces_where_things_are(shipyard: Shipyard) -> None:
    log = shipyard.up_log()
    assert f"API:   http://127.0.0.1:{shipyard.api_port}" in log
    assert f"Edge:  http://127.0.0.1:{shipyard.edge_port}" in log
    assert f"Token: {shipyard.data_dir / 'token'}" in log
    assert stat.S_IMODE(os.stat(shipyard.data_dir / "token").st_mode) == 0o600
    assert stat.S_IMODE(os.stat(shipyard.data_dir / "edge" / "admin.sock").st_mode) == 0o600
    assert shipyard.api("GET", "/openapi.json").json()["info"]["title"] == "Shipyard"


def test_second_up_on_same_data_dir_refuses(shipyard: Shipyard) -> None:
    done = subprocess.run([*SHIPYARD, "up", "--api-port", "1", "--edge-port", "2"], env=shipyard.env,
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 1
    assert f"Shipyard is already running on {shipyard.data_dir}" in done.stderr
    assert "--data-dir" in done.stderr


def test_api_needs_the_token(shipyard: Shipyard) -> None:
    base = f"http://127.0.0.1:{shipyard.api_port}"
    assert httpx.get(f"{base}/apps").status_code == 401
    wrong = httpx.get(f"{base}/apps", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401 and "not valid" in wrong.json()["error"]
    assert httpx.get(f"{base}/health").status_code == 200


def test_edge_pages_for_unknown_host_and_app_without_release(shipyard: Shipyard) -> None:
    unknown = shipyard.get("nothing-here")
    assert unknown.status_code == 404 and "No application" in unknown.text
    shipyard.cli("apps", "create", "empty")
    empty = shipyard.get("empty")
    assert empty.status_code == 503
    assert "shipyard logs empty" in empty.text


def test_push_to_live_then_redeploy_config_logs_and_destroy(shipyard: Shipyard) -> None:
    created = shipyard.cli("apps", "create", "todo").out
    assert shipyard.git_url("todo") in created
    assert f"http://todo.localhost:{shipyard.edge_port}/" in created

    work = shipyard.checkout("flask-hello", "todo")
    pushed = shipyard.push(work)
    assert "remote: -----> Python app detected (requirements.txt)" in pushed.err
    assert "remote: -----> Using start command from app.py: gunicorn --bind 127.0.0.1:$PORT app:app" in pushed.err
    assert "remote: -----> Adding gunicorn (your start command needs it" in pushed.err
    assert "remote: -----> v1 is live" in pushed.err
    response = shipyard.get("todo")
    assert response.status_code == 200 and response.text == "Hello from flask-hello v1\n"

    env = shipyard.get("todo", "/env").json()
    assert env["EXTERNAL_URL"] == f"http://todo.localhost:{shipyard.edge_port}/"
    assert env["EXTERNAL_HOSTNAME"] == "todo.localhost"
    assert env["WEB_CONCURRENCY"] == "2" and env["FORWARDED_ALLOW_IPS"] == "127.0.0.1"
    assert env["SHIPYARD_PROCESS"] == "web.1" and env["DYNO"] is None and env["PORT"].isdigit()
    headers = shipyard.get("todo", "/headers").json()
    assert headers["X-Forwarded-For"] == "127.0.0.1"
    assert headers["X-Forwarded-Proto"] == "http"
    assert headers["X-Forwarded-Host"] == f"todo.localhost:{shipyard.edge_port}"

    # Redeploy a code change while a client keeps requesting: no request may fail.
    failures: list[str] = []
    bodies: set[str] = set()
    stop = threading.Event()

    def hammer() -> None:
        while not stop.is_set():
            try:
                r = shipyard.get("todo")
                bodies.add(r.text)
                if r.status_code != 200:
                    failures.append(f"{r.status_code} {r.text[:80]}")
            except httpx.HTTPError as exc:
                failures.append(repr(exc))

    (work / "app.py").write_text((work / "app.py").read_text().replace('VERSION = "1"', 'VERSION = "2"'))
    shipyard.commit(work, "v2")
    client = threading.Thread(target=hammer)
    client.start()
    try:
        redeploy = shipyard.push(work)
    finally:
        time.sleep(1.0)
        stop.set()
        client.join()
    assert "remote: -----> v2 is live" in redeploy.err
    assert failures == []
    assert bodies == {"Hello from flask-hello v1\n", "Hello from flask-hello v2\n"}
    assert shipyard.get("todo").text == "Hello from flask-hello v2\n"

    set_out = shipyard.cli("config", "set", "todo", "GREETING=hi").out
    assert "restarted as v3" in set_out
    assert shipyard.get("todo").text == "hi from flask-hello v2\n"
    assert "GREETING=hi" in shipyard.cli("config", "todo").out

    releases = shipyard.cli("releases", "todo").out
    assert re.search(r"v3 \(current\)\s+succeeded", releases)
    assert "Set GREETING config vars" in releases and "Deploy" in releases

    listing = shipyard.cli("apps").out
    assert re.search(rf"todo\s+v3\s+up\s+http://todo.localhost:{shipyard.edge_port}/", listing)

    logs = shipyard.cli("logs", "todo").out
    assert re.search(r"^\S+ app\[web\.1\]: .*Listening at", logs, re.MULTILINE)
    assert "shipyard[api]: Release v3 is live" in logs

    # PYTHONFAULTHANDLER: if Ctrl-C ever fails to stop it, SIGABRT makes it print where it is stuck.
    # Ctrl-C as from a terminal: a CI job run in the background inherits SIGINT ignored (bash does that to `&`
    # jobs), and Python keeps an ignored SIGINT ignored.
    follower = subprocess.Popen([*SHIPYARD, "logs", "todo", "-f", "-n", "1"], env={**shipyard.env,
                                "PYTHONFAULTHANDLER": "1"}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        assert follower.stdout is not None
        assert follower.stdout.readline()  # the last line: it is connected, and follows from here
        shipyard.cli("config", "set", "todo", "GREETING=hey")
        seen = ""
        deadline = time.monotonic() + 20
        while "Release v4 is live" not in seen and time.monotonic() < deadline:
            seen += follower.stdout.readline()
        assert "Release v4 is live" in seen
    finally:
        follower.send_signal(signal.SIGINT)
        try:
            follower.wait(timeout=10)
        except subprocess.TimeoutExpired:
            follower.send_signal(signal.SIGABRT)
            raise AssertionError(f"`shipyard logs -f` ignored Ctrl-C:\n{follower.communicate(timeout=10)[1]}")

    refused = shipyard.cli("apps", "destroy", "todo", check=False)
    assert refused.code == 1 and "--confirm todo" in refused.err
    shipyard.cli("apps", "destroy", "todo", "--confirm", "todo")
    assert shipyard.get("todo").status_code == 404
    assert "todo" not in shipyard.cli("apps").out
    assert not (shipyard.data_dir / "repos" / "todo.git").exists()


def test_adaptable_start_command_with_an_app_factory(shipyard: Shipyard) -> None:
    shipyard.cli("apps", "create", "factory")
    work = shipyard.checkout("flask-factory", "factory")
    pushed = shipyard.push(work)
    assert 'Using start command from Procfile: gunicorn --bind=0.0.0.0:$PORT --threads=4 "myapp:start_app()"' \
        in pushed.err
    assert "Adding gunicorn" not in pushed.err
    assert shipyard.get("factory").text == "Hello from an app factory\n"


def test_crashed_instance_restarts_at_once_then_with_backoff(shipyard: Shipyard) -> None:
    shipyard.cli("apps", "create", "crashy")
    shipyard.push(shipyard.checkout("flask-hello", "crashy"))

    def instance() -> dict:
        [i] = shipyard.app_info("crashy")["instances"]
        return i

    os.kill(instance()["pid"], signal.SIGKILL)
    shipyard.wait_for(lambda: instance()["restarts"] == 1 and instance()["state"] == "up", timeout=10, interval=0.02)
    assert instance()["last_failure"] == "exited with status -9"
    # A second crash soon after is a repeat: it waits (1 s, then 2, 4 … 60), shown as `crashed`.
    os.kill(instance()["pid"], signal.SIGKILL)
    state = shipyard.wait_for(lambda: instance() if instance()["state"] == "crashed" else None, timeout=10,
                              interval=0.02)
    assert state["exit_code"] == -9
    shipyard.wait_for(lambda: instance()["state"] == "up", timeout=20)
    assert instance()["restarts"] == 2
    assert shipyard.get("crashy").status_code == 200
    logs = shipyard.cli("logs", "crashy").out
    assert "Process exited with status -9" in logs and "Restarting in 1 s" in logs


def test_only_the_apps_branch_deploys(shipyard: Shipyard) -> None:
    shipyard.cli("apps", "create", "branchy", "--branch", "production")
    work = shipyard.checkout("flask-hello", "branchy")
    pushed = shipyard.push(work)
    assert "remote: -----> Pushed refs/heads/main: only production is deployed" in pushed.err
    assert shipyard.app_info("branchy")["release"] is None
    deployed = shipyard.git(work, "push", "shipyard", "main:production")
    assert "remote: -----> v1 is live" in deployed.err
    assert shipyard.get("branchy").text == "Hello from flask-hello v1\n"


def test_large_push_arrives_whole(shipyard: Shipyard) -> None:
    """Over 1 MiB git switches to a chunked upload (after a probe request)."""
    shipyard.cli("apps", "create", "large")
    work = shipyard.checkout("flask-hello", "large")
    (work / "static.bin").write_bytes(os.urandom(3_000_000))
    shipyard.commit(work, "a large file")
    assert "remote: -----> v1 is live" in shipyard.push(work).err
    assert shipyard.get("large").status_code == 200
