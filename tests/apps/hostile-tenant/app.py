"""A tenant that tries to get out: each attempt reports whether the platform refused it.

The test tells it where things are through config vars (PROBE_*): the platform's data directory, the
API port, another app's instance port and pid, the platform's pid, an address outside this machine.
"""

import errno
import json
import os
import signal
import socket
import time
from pathlib import Path

from flask import Flask, request

app = Flask(__name__)
HOLD: list[bytearray] = []


def attempt(action) -> str:  # type: ignore[no-untyped-def]
    try:
        result = action()
    except Exception as exc:  # noqa: BLE001 - any failure means the platform refused
        return f"refused: {type(exc).__name__}: {exc}"
    return f"ALLOWED: {str(result)[:200]}"


def connect(host: str, port: int, timeout: float = 2.0) -> str:
    with socket.create_connection((host, port), timeout=timeout):
        return f"connected to {host}:{port}"


def env(name: str) -> str:
    return os.environ.get(name, "")


@app.get("/")
def index() -> str:
    return f"hostile tenant uid={os.getuid()}"


@app.get("/attempts")
def attempts() -> dict[str, str]:
    data = Path(env("PROBE_DATA_DIR"))
    other_app = env("PROBE_OTHER_APP")
    results = {
        "read the platform token": attempt(lambda: (data / "token").read_text()),
        "read secret.key": attempt(lambda: (data / "secret.key").read_bytes()),
        "read the CA key": attempt(lambda: (data / "ca" / "ca.key").read_bytes()),
        "read the PostgreSQL admin password": attempt(lambda: (data / "postgres" / "state.json").read_text()),
        "read the store": attempt(lambda: (data / "shipyard.db").read_bytes()),
        "list other apps' slugs": attempt(lambda: os.listdir(data / "slugs" / other_app)),
        "read other apps' repos": attempt(lambda: os.listdir(data / "repos")),
        "read other apps' logs": attempt(lambda: (data / "logs" / other_app / "app.log").read_text()),
        "list backups": attempt(lambda: os.listdir(data / "backups")),
        "open the edge's runtime API": attempt(lambda: _unix(data / "edge" / "admin.sock")),
        "rewrite the edge's hosts map": attempt(
            lambda: (data / "edge" / "hosts.map").write_text(f"{other_app}.localhost b0:{other_app}\n")),
        "read another app's environment": attempt(
            lambda: Path(f"/proc/{env('PROBE_OTHER_PID')}/environ").read_bytes()),
        "signal another app's process": attempt(lambda: os.kill(int(env("PROBE_OTHER_PID")), signal.SIGTERM)),
        "signal the platform": attempt(lambda: os.kill(int(env("PROBE_PLATFORM_PID")), signal.SIGTERM)),
        "signal pid 1 of the sandbox": attempt(lambda: os.kill(1, signal.SIGKILL)),
        "connect to the API": attempt(lambda: connect("127.0.0.1", int(env("PROBE_API_PORT")))),
        "connect to another app's instance": attempt(lambda: connect("127.0.0.1", int(env("PROBE_OTHER_PORT")))),
        "connect to this machine's other address": attempt(
            lambda: connect(env("PROBE_HOST_ADDRESS"), int(env("PROBE_API_PORT")))),
        "write to the system": attempt(lambda: Path("/usr/lib/owned").write_text("x")),
        "write to the slug's venv": attempt(lambda: (Path(os.environ["VIRTUAL_ENV"]) / "owned").write_text("x")),
        "gain root with a setuid-free trick": attempt(lambda: os.setuid(0)),
        "connect to an abstract unix socket outside the sandbox": attempt(
            lambda: _unix("\0" + env("PROBE_ABSTRACT_SOCKET"))),
    }
    return results


@app.get("/facts")
def facts() -> dict[str, object]:
    """What the sandbox looks like from inside (the test checks these are as confined as they should be)."""
    status = Path("/proc/self/status").read_text()
    fields = dict(line.split(":\t", 1) for line in status.splitlines() if ":\t" in line)
    pids = sorted(int(p) for p in os.listdir("/proc") if p.isdigit())
    owners = {}
    for pid in pids:
        try:
            owners[pid] = Path(f"/proc/{pid}/status").read_text().split("Uid:\t")[1].split()[0]
        except OSError:
            pass
    return {"uid": os.getuid(), "gid": os.getgid(), "groups": os.getgroups(), "cap_eff": fields["CapEff"].strip(),
            "no_new_privs": fields["NoNewPrivs"].strip(), "pids": pids, "owners": owners,
            "hostname": socket.gethostname(), "host_tmp_visible": Path(env("PROBE_HOST_TMP_MARKER")).exists(),
            "tmp_writable": _writable("/tmp"), "shm_writable": _writable("/dev/shm"), "cwd": os.getcwd(),
            "abstract_socket_inside": attempt(_abstract_inside)}


def _abstract_inside() -> str:
    """Abstract unix sockets still work between the app's own processes."""
    name = f"\0hostile-{os.getpid()}"
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(name)
        server.listen()
        return _unix(name)


def _writable(folder: str) -> bool:
    try:
        Path(folder, "probe").write_text("x")
        return True
    except OSError:
        return False


@app.post("/write")
def write() -> str:
    """Writes to the app directory work, as on Heroku (and are gone after a restart)."""
    Path("written.txt").write_text(request.get_data(as_text=True))
    Path("app.py").write_text(Path("app.py").read_text() + "\n# changed at run time\n")
    return Path("written.txt").read_text()


@app.get("/written")
def written() -> str:
    return Path("written.txt").read_text() if Path("written.txt").exists() else "(none)"


@app.get("/outside")
def outside() -> str:
    """The outside world is reachable (the test's own host in a network namespace)."""
    return attempt(lambda: connect(env("PROBE_OUTSIDE_HOST"), int(env("PROBE_OUTSIDE_PORT"))))


@app.get("/database")
def database() -> dict[str, str]:
    import psycopg

    def own() -> str:
        with psycopg.connect(os.environ["DATABASE_URL"], connect_timeout=5) as conn:
            return str(conn.execute("SELECT current_user").fetchone())

    def admin_program() -> str:
        with psycopg.connect(os.environ["DATABASE_URL"], connect_timeout=5) as conn:
            return str(conn.execute("COPY (SELECT 1) TO PROGRAM 'id'").statusmessage)

    other = env("PROBE_OTHER_DATABASE_URL")
    return {"own database": attempt(own), "run a program as the server": attempt(admin_program),
            "another app's database with its own password": attempt(
                lambda: psycopg.connect(other, connect_timeout=5).close()) if other else "skipped"}


@app.post("/hog")
def hog() -> str:
    """Allocate far past the memory limit: the kernel kills this instance, the platform restarts it."""
    for _ in range(64):
        HOLD.append(bytearray(32 * 1024 * 1024))
        for page in range(0, len(HOLD[-1]), 4096):
            HOLD[-1][page] = 1
    return f"still alive with {len(HOLD) * 32} MB"


@app.post("/forkbomb")
def forkbomb() -> dict[str, object]:
    """Fork until the kernel says no: the pids cap stops it; the children are reaped afterwards."""
    children, error = [], ""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and len(children) < 5000:
        try:
            pid = os.fork()
        except OSError as exc:
            error = errno.errorcode.get(exc.errno or 0, str(exc))
            break
        if pid == 0:
            time.sleep(30)
            os._exit(0)
        children.append(pid)
    for pid in children:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    return {"forked": len(children), "stopped_by": error}


def _unix(path: "Path | str") -> str:
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(str(path))
    return "connected"


@app.get("/json")
def as_json() -> str:
    return json.dumps({"ok": True})
