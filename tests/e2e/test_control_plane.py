"""Control-plane hardening (issue 10) against a real `shipyard up`: the token file, Bearer vs Basic, the
console's Origin check, config value limits, commands that start with a dash, database connection limits."""

from __future__ import annotations

import base64
import json
import os
import shlex
from urllib.parse import urlencode

import httpx
import psycopg
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from .harness import Shipyard


def test_an_empty_short_or_public_token_file_stops_the_start(tmp_path) -> None:  # type: ignore[no-untyped-def]
    platform = Shipyard(tmp_path)
    platform.data_dir.mkdir(parents=True)
    token = platform.data_dir / "token"
    for text, mode, says in (("", 0o600, "is empty"), ("too-short\n", 0o600, "has 9 characters"),
                             ("k" * 40 + "\n", 0o644, "can be read by other users (mode 0644)")):
        token.write_text(text)
        os.chmod(token, mode)
        offset = len(platform.up_log())
        try:
            with pytest.raises(RuntimeError) as info:
                platform.start()
        finally:
            platform.kill_all()
        log = platform.up_log()[offset:]
        assert "exited" in str(info.value)
        assert says in log and f"rm {token}" in log, log
        assert "Shipyard is up" not in log and not (platform.data_dir / "platform.json").exists()
        assert token.read_text() == text  # left for the operator to fix
    os.chmod(token, 0o600)  # the fix the message gives
    try:
        platform.start()
        assert platform.api("GET", "/apps").status_code == 200
    finally:
        platform.stop()


def basic(password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"shipyard:{password}".encode()).decode()}


def test_basic_auth_and_its_challenge_only_for_git(shipyard: Shipyard) -> None:
    base = f"http://127.0.0.1:{shipyard.api_port}"
    anonymous = httpx.get(f"{base}/apps")
    assert anonymous.status_code == 401 and anonymous.headers["www-authenticate"] == 'Bearer realm="Shipyard"'
    with_basic = httpx.get(f"{base}/apps", headers=basic(shipyard.token))
    assert with_basic.status_code == 401 and "only for git" in with_basic.json()["error"]
    assert "basic" not in with_basic.headers["www-authenticate"].lower()
    assert httpx.get(f"{base}/apps", headers={"Authorization": f"Bearer {shipyard.token}"}).status_code == 200

    refs = f"{base}/git/nothing.git/info/refs?service=git-receive-pack"
    challenged = httpx.get(refs)
    assert challenged.status_code == 401 and challenged.headers["www-authenticate"] == 'Basic realm="Shipyard"'
    answered = httpx.get(refs, headers=basic(shipyard.token))  # git's way in: past auth, to the app lookup
    assert answered.status_code == 200 and "There is no app named 'nothing'" in answered.text


def console(shipyard: Shipyard, command: str, headers: dict[str, str], origin: str | None = None
            ) -> tuple[list[dict], bytes, int | None]:
    """The frames a WebSocket client gets from /apps/ctl/console: JSON events, output, close code."""
    url = f"ws://127.0.0.1:{shipyard.api_port}/apps/ctl/console?" + urlencode({"command": command})
    events: list[dict] = []
    output = b""
    with connect(url, additional_headers=headers, origin=origin, open_timeout=30) as ws:  # type: ignore[arg-type]
        try:
            for message in ws:
                if isinstance(message, bytes):
                    output += message
                else:
                    events.append(json.loads(message))
        except ConnectionClosed:
            pass
        code = ws.close_code
    return events, output, code


def test_console_refuses_other_origins_and_tokens_before_starting(shipyard: Shipyard) -> None:
    # git pushes with the credential helper's Basic password.
    shipyard.cli("apps", "create", "ctl")
    shipyard.push(shipyard.checkout("flask-hello", "ctl"))
    bearer = {"Authorization": f"Bearer {shipyard.token}"}
    own = f"http://127.0.0.1:{shipyard.api_port}"
    for headers, origin, says in ((bearer, "http://evil.example", "other origins"),
                                  (bearer, f"http://localhost:{shipyard.api_port}", "other origins"),
                                  (basic(shipyard.token), own, "only for git"),
                                  ({}, None, "Authentication required")):
        events, output, code = console(shipyard, "touch /tmp/hijacked; echo hijacked", headers, origin)
        assert code == 1008 and len(events) == 1 and says in events[0]["error"], events
        assert output == b""
    assert "touch /tmp/hijacked" not in shipyard.cli("logs", "ctl").out  # no process was started

    # The CLI's way (no Origin) and the API's own origin work; a command starting with dashes is a command.
    events, output, code = console(shipyard, "echo console-ok", bearer)
    assert events[-1] == {"exit": 0} and b"console-ok" in output
    events, output, _ = console(shipyard, "--version", bearer, origin=own)
    assert "started" in events[0] and events[-1] == {"exit": 127}, (events, output)
    assert b"--version: command not found" in output and b"GNU bash" not in output


def test_commands_starting_with_a_dash_are_commands(shipyard: Shipyard) -> None:
    version = shipyard.cli("run", "ctl", "--", "--version", check=False)
    assert version.code == 127 and "--version: command not found" in version.err + version.out, version.text
    assert "GNU bash" not in version.text
    dash_c = shipyard.cli("run", "ctl", "--", "-c", "echo hi", check=False)
    assert dash_c.code == 127 and "-c: command not found" in dash_c.text and "hi\n" not in dash_c.out, dash_c.text
    argv = shipyard.cli("run", "ctl", "--", "python", "-c", "import sys; print(sys.argv[1:])", "-d", "--no-tty",
                        "--", "--help")
    assert argv.out == "['-d', '--no-tty', '--', '--help']\n"
    listed = shipyard.cli("run", "ctl", "ls", "-d", "app.py")  # without `--`: still the command's, not `run`'s
    assert listed.out == "app.py\n"
    unknown = shipyard.cli("run", "ctl", "-x", check=False)
    assert unknown.code == 1 and "shipyard run APP -- -x" in unknown.err


def config_of(shipyard: Shipyard, app: str) -> dict[str, str]:
    return shipyard.api("GET", f"/apps/{app}/config", params={"reveal": True}).json()["config"]


def test_config_values_with_nul_or_over_the_limits_are_refused(shipyard: Shipyard) -> None:
    large = shipyard.cli("config", "set", "ctl", "BLOB=" + "x" * 33_000, check=False)
    assert large.code == 1 and "The value of BLOB is 32.2 KB; a config var can hold at most 32 KB." in large.err
    assert "repository" in large.err
    nul = shipyard.api("PATCH", "/apps/ctl/config", json={"set": {"BIN": "a\u0000b"}})
    assert nul.status_code == 422 and "The value of BIN contains a NUL byte" in nul.json()["error"]
    key = shipyard.api("PATCH", "/apps/ctl/config", json={"set": {"A\nB": "x"}})
    assert key.status_code == 422 and "not a valid config var name" in key.json()["error"]

    # Values may hold newlines and `=`: they reach the app as one variable, forging no other.
    shipyard.cli("config", "set", "ctl", "A=" + "a" * 30_000, "MULTI=k=v\nEVIL=1\n")
    shown = shipyard.cli("run", "ctl", "--", "python", "-c",
                         "import os; print(repr(os.environ['MULTI']), 'EVIL' in os.environ, len(os.environ['A']))")
    assert shown.out == "'k=v\\nEVIL=1\\n' False 30000\n"

    total = shipyard.cli("config", "set", "ctl", "B=" + "b" * 30_000, "C=" + "c" * 6_000, check=False)
    assert total.code == 1 and "an app can have at most 64 KB of config vars in all" in total.err, total.text
    assert "B" not in config_of(shipyard, "ctl") and "C" not in config_of(shipyard, "ctl")
    shipyard.cli("config", "unset", "ctl", "A")
    shipyard.cli("config", "set", "ctl", "B=" + "b" * 30_000, "C=" + "c" * 6_000)
    assert len(config_of(shipyard, "ctl")["B"]) == 30_000


def admin_connection(shipyard: Shipyard) -> psycopg.Connection:
    state = json.loads((shipyard.data_dir / "postgres" / "state.json").read_text())
    return psycopg.connect(host="127.0.0.1", port=int(state["port"]), dbname="postgres", user="shipyard_admin",
                           password=state["admin_password"], sslmode="verify-full",
                           sslrootcert=str(shipyard.data_dir / "ca" / "ca.crt"), autocommit=True)


def database_url(shipyard: Shipyard, app: str) -> str:
    revealed = shipyard.cli("config", app, "--reveal").out
    return next(shlex.split(line)[0].split("=", 1)[1] for line in revealed.splitlines()
                if line.startswith("DATABASE_URL="))


ROLE = """SELECT rolsuper, rolcreaterole, rolcreatedb, rolreplication, rolbypassrls, rolconnlimit,
                 (SELECT count(*) FROM pg_auth_members WHERE member = r.oid)
          FROM pg_roles r WHERE rolname = current_user"""


def open_connections(url: str, ca: str, count: int) -> tuple[list[psycopg.Connection], list[str]]:
    opened, refused = [], []
    for _ in range(count):
        try:
            opened.append(psycopg.connect(url, sslmode="verify-full", sslrootcert=ca, connect_timeout=10))
        except psycopg.OperationalError as exc:
            refused.append(str(exc))
    return opened, refused


def test_an_app_cannot_take_every_database_connection(shipyard: Shipyard) -> None:
    shipyard.cli("apps", "create", "hog", "--postgres")
    shipyard.cli("apps", "create", "neighbour", "--postgres")
    ca = str(shipyard.data_dir / "ca" / "ca.crt")
    hog, neighbour = database_url(shipyard, "hog"), database_url(shipyard, "neighbour")

    opened, refused = open_connections(hog, ca, 25)
    try:
        assert len(opened) == 20 and len(refused) == 5
        assert all('too many connections for role "app_hog"' in r for r in refused), refused
        with psycopg.connect(neighbour, sslmode="verify-full", sslrootcert=ca) as other:
            assert other.execute("SELECT current_user").fetchone() == ("app_neighbour",)
        # Nothing that reaches the admin or other apps: no role attribute, no membership.
        assert opened[0].execute(ROLE).fetchone() == (False, False, False, False, False, 20, 0)
        assert opened[0].execute("SELECT pg_has_role('shipyard_admin', 'MEMBER')").fetchone() == (False,)
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            opened[0].execute("ALTER ROLE app_hog CONNECTION LIMIT -1")
    finally:
        for conn in opened:
            conn.close()

    # A role made before the limit existed (or changed since) is brought back to it when the platform starts.
    with admin_connection(shipyard) as admin:
        admin.execute("ALTER ROLE app_hog CONNECTION LIMIT -1 CREATEDB CREATEROLE")
        admin.execute("GRANT pg_read_server_files, pg_signal_backend TO app_hog")
    assert shipyard.stop() == 0
    shipyard.start()
    opened, refused = open_connections(hog, ca, 21)
    try:
        assert len(opened) == 20 and len(refused) == 1
        assert opened[0].execute(ROLE).fetchone() == (False, False, False, False, False, 20, 0)
    finally:
        for conn in opened:
            conn.close()
