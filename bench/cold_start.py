"""Waking from zero and from frozen: how long the first request to an idle app waits, against a bare spawn of the
same app (issue 15: wake from zero p50 ≤ 1.2× the bare `.pyc` spawn and < 250 ms for tests/apps/flask-hello; wake
from frozen p50 < 20 ms).

Starts a real `shipyard up` in a temporary data directory (SHIPYARD_FREEZE_AFTER=1, SHIPYARD_SCALE_TO_ZERO_AFTER=4,
so an idle app is frozen, then at zero, within seconds), deploys tests/apps/flask-hello with git and scales it
`web --min 0 --max 1`. Then, for `--rounds` rounds, interleaved (the order alternates from round to round):

- **frozen**: after a wake, once the API shows the instance frozen, `GET /` through the edge, timed as below;
  then the app is left to reach zero.

- **wake**: with the app at zero, `GET /` through the edge (127.0.0.1:<edge port>, the app's Host header), from the
  request sent to the whole 200 response with the app's body; then wait until the app is back at zero (the
  formation says 0 and its gunicorn is gone).
- **bare**: the same slug run without the platform: the app's `web` command from the slug's manifest.json,
  through bash, in the slug's app directory, with the environment the platform gave its instance (read from the
  running instance's /proc/<pid>/environ before the first scale to zero), PORT and the bind address changed to a
  free loopback port; timed from spawn to the first 200 with the right body, polled with connect + GET every
  5 ms. It runs as root without the sandbox and its cgroup, with PYTHONDONTWRITEBYTECODE=1 (the slug must stay
  as the platform built it: a root gunicorn would otherwise write missing `.pyc` into it). Stopped by its pid.
- **bare, 1 CPU** (unless `--no-capped`): the same, in a cgroup of its own (cpu controller only; the child joins it
  before exec) with the CPU quota of the app's size (`small`: 1 CPU, as the platform's instance cgroup has), to
  tell the quota's share of the gap from the rest. Its time includes that move into the cgroup.

One untimed bare spawn and one untimed wake run first. The bytecode the build compiled is checked (the slug's
app and venv: `.pyc` present and matching its source's mtime and size) and reported.

The platform's own timeline of each wake comes from `shipyard logs APP` (microsecond stamps): the activator's
"A request arrived", the instance's "Starting process" (after cgroup + bubblewrap fork/exec), gunicorn's
"Listening at", the first health probe gunicorn answered 200 and the bench's own request (gunicorn's access log,
turned on for the app with GUNICORN_CMD_ARGS, the bare spawn gets the same), "State changed from starting to
up". An app's output is stamped when the platform reads it (it reads at most every 5 ms), so those steps are
up to ~5 ms late.

Usage: python bench/cold_start.py [--rounds 10] [--markdown] [--no-capped] [--settle SECONDS] [--no-favor-moves]
       [--py-spy OUT.txt]
Needs what `shipyard up` needs (run as root, like the e2e tests).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.e2e.harness import Shipyard, descendants, free_port  # noqa: E402

APP = "coldstart"
SAMPLE = "flask-hello"
BODY = "Hello from flask-hello v1\n"
GOAL_RATIO = 1.2
GOAL_MS = 250.0
POLL = 0.005  # between connect + GET attempts of the bare spawn
FREEZE_AFTER = 1  # SHIPYARD_FREEZE_AFTER: seconds of idle before the instance is frozen
ZERO_AFTER = 4  # SHIPYARD_SCALE_TO_ZERO_AFTER: seconds of idle before zero
GOAL_FROZEN_MS = 20.0
BENCH_AGENT = "cold-start-bench"
# gunicorn's access log, so the app's log says when a health probe and the bench's request were answered.
ACCESS_LOG = "--access-logfile=- --access-logformat='%(s)s \"%(a)s\" \"%(r)s\"'"
PY_SPY = Path("/tmp/pyspy/bin/py-spy")
CAPPED_CPUS = 1.0  # the `small` size's CPU quota (runtime/limits.py)
CFS_PERIOD = 100_000


# ---------------------------------------------------------------------------------------------- requests

def request_bytes(host: str) -> bytes:
    return (f"GET / HTTP/1.1\r\nHost: {host}\r\nUser-Agent: {BENCH_AGENT}\r\nAccept: */*\r\n"
            "Connection: close\r\n\r\n").encode()


def read_response(sock: socket.socket) -> tuple[int, str]:
    """(status, body) of a `Connection: close` response read to its end."""
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status_line = head.split(b"\r\n", 1)[0].split()
    status = int(status_line[1]) if len(status_line) > 1 else 0
    if re.search(rb"(?im)^transfer-encoding:\s*chunked", head):
        body = dechunk(body)
    return status, body.decode("utf-8", errors="replace")


def dechunk(body: bytes) -> bytes:
    out = b""
    while body:
        size_line, _, body = body.partition(b"\r\n")
        size = int(size_line.split(b";")[0] or b"0", 16)
        if size == 0:
            break
        out, body = out + body[:size], body[size + 2:]
    return out


def get_once(port: int, host: str, timeout: float = 60) -> tuple[int, str]:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(request_bytes(host))
        return read_response(sock)


# ------------------------------------------------------------------------------------------------ logs

LINE = re.compile(r"^(\d{4}-\d\d-\d\dT[\d:.]+(?:[+-]\d\d:\d\d|Z)) (\S+?): (.*)$")


@dataclass
class LogLine:
    at: float  # time.time()
    source: str
    text: str


def app_log(shipyard: Shipyard) -> list[LogLine]:
    lines = []
    for raw in shipyard.cli("logs", APP, "-n", "600").out.splitlines():
        if match := LINE.match(raw):
            stamp = datetime.fromisoformat(match[1]).timestamp()
            lines.append(LogLine(stamp, match[2], match[3]))
    return lines


@dataclass
class Timeline:
    """A wake as the platform logged it; seconds since the epoch, None where the log lacks the line."""

    sent: float
    answered: float
    activator: float | None = None
    spawned: float | None = None  # "Starting process …": cgroup made, bubblewrap forked and let go
    listening: float | None = None  # gunicorn's "Listening at"
    first_health_ok: float | None = None  # the first health probe gunicorn answered 200 (access log)
    ready: float | None = None  # "State changed from starting to up"
    bench_served: float | None = None  # the bench's own request in gunicorn's access log
    probes: int = 0  # health probes gunicorn answered before the instance was ready


def timeline(lines: list[LogLine], sent: float, answered: float) -> Timeline:
    found = Timeline(sent, answered)
    after = [line for line in lines if line.at >= sent - 0.005]
    for line in after:
        if found.activator is None:
            if line.source == "shipyard[activator]" and "A request arrived" in line.text:
                found.activator = line.at
            continue
        if found.spawned is None and line.source.startswith("shipyard[web.") and "Starting process" in line.text:
            found.spawned = line.at
        elif found.listening is None and line.source.startswith("app[web.") and "Listening at" in line.text:
            found.listening = line.at
        elif line.source.startswith("app[web.") and "GET / " in line.text and BENCH_AGENT not in line.text:
            if found.ready is None:
                found.probes += 1
                if found.first_health_ok is None and line.text.startswith("200 "):
                    found.first_health_ok = line.at
        elif found.ready is None and line.source.startswith("shipyard[web.") and "starting to up" in line.text:
            found.ready = line.at
        elif found.bench_served is None and line.source.startswith("app[web.") and BENCH_AGENT in line.text:
            found.bench_served = line.at
    return found


def steps(t: Timeline) -> dict[str, float | None]:
    """The wake split into what the log timestamps separate (ms); None where a line is missing."""
    def gap(a: float | None, b: float | None) -> float | None:
        return (b - a) * 1000 if a is not None and b is not None else None

    return {
        "edge → activator (request logged)": gap(t.sent, t.activator),
        "spawn: cgroup, bubblewrap fork (until \"Starting process\")": gap(t.activator, t.spawned),
        "until gunicorn listens (bash, python, gunicorn import, bind)": gap(t.spawned, t.listening),
        "until a worker answers the health probe (app import)": gap(t.listening, t.first_health_ok),
        "rest of the health gate (settle, 50 ms polling, worker check)": gap(t.first_health_ok, t.ready),
        "switch of routes + hand-over to the instance (until app served it)": gap(t.ready, t.bench_served),
        "forwarding the response back (app → activator → edge → client)": gap(t.bench_served, t.answered),
    }


# ------------------------------------------------------------------------------------------- bare spawn

@dataclass
class BareApp:
    command: str
    cwd: Path
    env: dict[str, str]
    host: str


def instance_master(shipyard: Shipyard, slug: Path) -> int:
    """The pid of the app's running gunicorn master (the gunicorn process whose parent is not gunicorn)."""
    assert shipyard.proc is not None
    tree = {}
    for pid in descendants(shipyard.proc.pid):
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            parent = int(Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        if any(b"gunicorn" in a for a in argv[:3]):
            tree[pid] = parent
    masters = [pid for pid, parent in tree.items() if parent not in tree]
    assert len(masters) == 1, f"expected one gunicorn master, found {masters}"
    return masters[0]


def bare_app(shipyard: Shipyard, slug: Path) -> BareApp:
    """The app as the platform runs it: the manifest's web command, the instance's own environment."""
    manifest = json.loads((slug / "manifest.json").read_text())
    master = instance_master(shipyard, slug)
    raw = Path(f"/proc/{master}/environ").read_bytes().split(b"\0")
    env = dict(item.decode().split("=", 1) for item in raw if b"=" in item)
    env["GUNICORN_CMD_ARGS"] = re.sub(r"--bind=\S+\s*", "", env.get("GUNICORN_CMD_ARGS", "")).strip()
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return BareApp(manifest["process_types"]["web"], slug / "app", env, f"{APP}.localhost:{shipyard.edge_port}")


@dataclass
class CpuCgroup:
    """A cgroup with a CPU quota for the capped bare spawn (cgroup v1's cpu controller, or v2)."""

    folder: Path

    @classmethod
    def make(cls, cpus: float) -> CpuCgroup | None:
        quota = int(cpus * CFS_PERIOD)
        name = f"shipyard-cold-start-bench-{os.getpid()}"
        try:
            if Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us").exists():  # v1
                folder = Path("/sys/fs/cgroup/cpu") / name
                folder.mkdir()
                (folder / "cpu.cfs_period_us").write_text(str(CFS_PERIOD))
                (folder / "cpu.cfs_quota_us").write_text(str(quota))
            elif Path("/sys/fs/cgroup/cgroup.controllers").exists():  # v2: beside the bench's own cgroup
                own = Path("/proc/self/cgroup").read_text().strip().split("::", 1)[1].lstrip("/")
                parent = Path("/sys/fs/cgroup") / own
                folder = parent.parent / name if own else parent / name
                folder.mkdir()
                (folder / "cpu.max").write_text(f"{quota} {CFS_PERIOD}")
            else:
                return None
        except OSError as exc:
            print(f"(no capped bare spawn: cannot make a CPU cgroup: {exc})")
            return None
        return cls(folder)

    def join(self) -> None:  # preexec_fn
        (self.folder / "cgroup.procs").write_text(str(os.getpid()))

    def remove(self) -> None:
        for _ in range(50):
            try:
                self.folder.rmdir()
                return
            except FileNotFoundError:
                return
            except OSError:
                time.sleep(0.1)


def stop_group(proc: subprocess.Popen[bytes]) -> None:
    """Stop a bare spawn and what it forked (its own session): by its pid, TERM then KILL."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # workers that outlived their master
    except ProcessLookupError:
        pass
    proc.wait()


def bare_spawn(app: BareApp, log: Path, cgroup: CpuCgroup | None = None) -> tuple[float, float]:
    """Spawn → (listening, first 200 with the body) in ms: connect + GET every POLL seconds."""
    port = free_port()
    env = {**app.env, "PORT": str(port),
           "GUNICORN_CMD_ARGS": f"--bind=127.0.0.1:{port} {app.env['GUNICORN_CMD_ARGS']}".strip()}
    request = request_bytes(app.host)
    with open(log, "ab") as out:
        started = time.perf_counter()
        proc = subprocess.Popen(["/bin/bash", "-c", "--", app.command], cwd=app.cwd, env=env, stdin=subprocess.DEVNULL,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                                preexec_fn=cgroup.join if cgroup else None)  # noqa: PLW1509 (no threads here)
    listening = None
    try:
        deadline = started + 60
        while time.perf_counter() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"the bare spawn exited with {proc.returncode}: see {log}")
            sock = socket.socket()
            sock.settimeout(30)
            try:
                sock.connect(("127.0.0.1", port))
            except ConnectionRefusedError:
                sock.close()
                time.sleep(POLL)
                continue
            listening = listening or time.perf_counter()
            try:
                sock.sendall(request)
                status, body = read_response(sock)
            except (TimeoutError, ConnectionError):
                status, body = 0, ""
            finally:
                sock.close()
            if status == 200 and body == BODY:
                done = time.perf_counter()
                return (listening - started) * 1000, (done - started) * 1000
            time.sleep(POLL)
        raise RuntimeError(f"the bare spawn did not answer within 60 s: see {log}")
    finally:
        stop_group(proc)


# ---------------------------------------------------------------------------------------------- bytecode

MAGIC_FLAGS = 4  # bytes: magic number, then flags, mtime, size (PEP 552)


def bytecode_status(root: Path, tag: str) -> tuple[int, int, int, list[Path]]:
    """(sources, .pyc present and matching the source's mtime and size, .pyc present but stale, sources without
    a .pyc) under root."""
    sources = fresh = stale = 0
    missing = []
    for source in root.rglob("*.py"):
        if not source.is_file():
            continue
        sources += 1
        pyc = source.parent / "__pycache__" / f"{source.stem}.{tag}.pyc"
        try:
            header = pyc.read_bytes()[:16]
        except OSError:
            missing.append(source.relative_to(root))
            continue
        flags = int.from_bytes(header[4:8], "little")
        if flags & 1:  # hash-based: valid by hash (checked or not), counted as fresh
            fresh += 1
            continue
        stat = source.stat()
        mtime, size = int.from_bytes(header[8:12], "little"), int.from_bytes(header[12:16], "little")
        if mtime == int(stat.st_mtime) & 0xFFFFFFFF and size == stat.st_size & 0xFFFFFFFF:
            fresh += 1
        else:
            stale += 1
    return sources, fresh, stale, missing


def describe_bytecode(slug: Path, python: str) -> str:
    tag = "cpython-" + "".join(python.split(".")[:2])
    parts = []
    for name, root in (("app", slug / "app"), ("venv", (slug / "venv").resolve())):
        sources, fresh, stale, missing = bytecode_status(root, tag)
        parts.append(f"{name}: {fresh}/{sources} .py with a matching {tag}.pyc"
                     + (f", {stale} stale" if stale else "")
                     + (f" (none for {', '.join(map(str, missing[:3]))}{', …' if len(missing) > 3 else ''})"
                        if missing else ""))
    return "; ".join(parts)


# --------------------------------------------------------------------------------------------- platform

def instance_gone(shipyard: Shipyard, slug: Path) -> bool:
    assert shipyard.proc is not None
    for pid in descendants(shipyard.proc.pid):
        try:
            if str(slug).encode() in Path(f"/proc/{pid}/environ").read_bytes() or \
                    b"gunicorn" in Path(f"/proc/{pid}/cmdline").read_bytes():
                return False
        except OSError:
            continue
    return True


def wait_for_zero(shipyard: Shipyard, slug: Path, timeout: float = ZERO_AFTER + 30) -> None:
    shipyard.wait_for(lambda: shipyard.app_info(APP)["formation"]["web"] == 0 and instance_gone(shipyard, slug),
                      timeout=timeout, interval=0.1)
    time.sleep(0.3)  # the edge's route to the activator is applied before the old instance drains


def wait_for_frozen(shipyard: Shipyard) -> None:
    shipyard.wait_for(lambda: [i["state"] for i in shipyard.app_info(APP)["instances"]] == ["frozen"],
                      timeout=FREEZE_AFTER + 10, interval=0.05)
    time.sleep(0.2)  # the edge's route to the activator is applied right after the freeze


def wake(shipyard: Shipyard) -> Timeline:
    host = f"{APP}.localhost:{shipyard.edge_port}"
    sent = time.time()
    status, body = get_once(shipyard.edge_port, host)
    answered = time.time()
    if status != 200 or body != BODY:
        raise AssertionError(f"the wake answered {status}: {body[:300]!r}")
    return Timeline(sent, answered)


def slug_of(shipyard: Shipyard) -> Path:
    slugs = [p for p in (shipyard.data_dir / "slugs" / APP).iterdir() if (p / "manifest.json").is_file()]
    assert len(slugs) >= 1, slugs
    return max(slugs, key=lambda p: p.name)


# ------------------------------------------------------------------------------------------------ figures

def stats(values: list[float]) -> tuple[float, float, float, float]:
    """p50, p90, min, max."""
    p90 = statistics.quantiles(values, n=10, method="inclusive")[8] if len(values) > 1 else values[0]
    return statistics.median(values), p90, min(values), max(values)


def fmt(values: list[float], digits: int = 0) -> str:
    if not values:
        return "n/a"
    p50, p90, low, high = stats(values)
    return f"p50 {p50:6.{digits}f}  p90 {p90:6.{digits}f}  min {low:6.{digits}f}  max {high:6.{digits}f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--markdown", action="store_true", help="also print the figures as a Markdown table")
    parser.add_argument("--no-capped", action="store_true", help="skip the bare spawn capped at 1 CPU")
    parser.add_argument("--settle", type=float, metavar="SECONDS",
                        help="SHIPYARD_READINESS_SETTLE for the platform (default: the platform's, 0.5 s)")
    parser.add_argument("--no-favor-moves", action="store_true",
                        help="SHIPYARD_FAVOR_CGROUP_MOVES=0: the platform mounts no hierarchy with favordynmods (Linux "
                             "≥ 6.17 keeps a mode it was once asked for until the machine restarts)")
    parser.add_argument("--py-spy", type=Path, metavar="OUT",
                        help=f"record the platform's Python stacks with {PY_SPY} during the rounds (raw folded "
                             "stacks, idle threads too)")
    args = parser.parse_args()
    one, five, fifteen = os.getloadavg()
    print(f"load average at start: {one:.2f} {five:.2f} {fifteen:.2f} ({os.cpu_count()} CPUs)")

    wakes: list[float] = []
    thaws: list[float] = []
    timelines: list[Timeline] = []
    bare_listen: list[float] = []
    bare: list[float] = []
    capped_listen: list[float] = []
    capped: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        shipyard = Shipyard(root)
        shipyard.env["SHIPYARD_SCALE_TO_ZERO_AFTER"] = str(ZERO_AFTER)
        shipyard.env["SHIPYARD_FREEZE_AFTER"] = str(FREEZE_AFTER)
        if args.no_favor_moves:
            shipyard.env["SHIPYARD_FAVOR_CGROUP_MOVES"] = "0"
            print("SHIPYARD_FAVOR_CGROUP_MOVES=0")
        if args.settle is not None:
            shipyard.env["SHIPYARD_READINESS_SETTLE"] = str(args.settle)
            print(f"SHIPYARD_READINESS_SETTLE={args.settle:g}")
        cgroup: CpuCgroup | None = None
        spy: subprocess.Popen[bytes] | None = None
        shipyard.start()
        try:
            shipyard.cli("apps", "create", APP)
            shipyard.cli("config", "set", APP, f"GUNICORN_CMD_ARGS={ACCESS_LOG}")
            shipyard.push(shipyard.checkout(SAMPLE, APP))
            assert shipyard.get(APP).text == BODY
            slug = slug_of(shipyard)
            manifest = json.loads((slug / "manifest.json").read_text())
            print(f"slug: {slug.relative_to(shipyard.data_dir)} (venv → {(slug / 'venv').resolve().name}), "
                  f"Python {manifest['python']}")
            print(f"bytecode the build compiled: {describe_bytecode(slug, manifest['python'])}")
            app = bare_app(shipyard, slug)
            print(f"web command: {app.command}  (WEB_CONCURRENCY={app.env.get('WEB_CONCURRENCY')}, "
                  f"GUNICORN_CMD_ARGS={app.env['GUNICORN_CMD_ARGS']})")

            shipyard.cli("scale", APP, "web", "--min", "0", "--max", "1")
            wait_for_zero(shipyard, slug)
            if not args.no_capped:
                cgroup = CpuCgroup.make(CAPPED_CPUS)
            bare_log = root / "bare.log"
            # Untimed: a bare spawn (bytecode and page cache as they will be) and a wake.
            bare_spawn(app, bare_log)
            warm = wake(shipyard)
            wait_for_zero(shipyard, slug)
            print(f"untimed first wake: {(warm.answered - warm.sent) * 1000:.0f} ms")
            if args.py_spy:
                spy = subprocess.Popen([str(PY_SPY), "record", "-p", str(shipyard.proc.pid), "-r", "200", "-f", "raw",
                                        "--idle", "-o", str(args.py_spy), "--nonblocking"],
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                time.sleep(1)

            for n in range(args.rounds):
                order = ["wake", "bare", "capped"] if n % 2 == 0 else ["capped", "bare", "wake"]
                for what in order:
                    if what == "wake":
                        timeline_ = wake(shipyard)
                        wakes.append((timeline_.answered - timeline_.sent) * 1000)
                        time.sleep(0.2)  # the access log line of the bench's request reaches the app's log
                        timelines.append(timeline(app_log(shipyard), timeline_.sent, timeline_.answered))
                        wait_for_frozen(shipyard)
                        thawed = wake(shipyard)
                        thaws.append((thawed.answered - thawed.sent) * 1000)
                        wait_for_zero(shipyard, slug)
                    elif what == "bare":
                        listen, answered = bare_spawn(app, bare_log)
                        bare_listen.append(listen)
                        bare.append(answered)
                    elif cgroup is not None:
                        listen, answered = bare_spawn(app, bare_log, cgroup)
                        capped_listen.append(listen)
                        capped.append(answered)
                print(f"round {n + 1}/{args.rounds}: wake {wakes[-1]:.0f} ms, from frozen {thaws[-1]:.1f} ms, "
                      f"bare {bare[-1]:.0f} ms"
                      + (f", bare 1 CPU {capped[-1]:.0f} ms" if capped else ""), flush=True)
        finally:
            if spy is not None:
                spy.send_signal(signal.SIGINT)
                try:
                    spy.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    spy.kill()
                    spy.wait()
            shipyard.kill_all()
            if cgroup is not None:
                cgroup.remove()

    print()
    print(f"wake from zero at the edge ({len(wakes)}):        {fmt(wakes)}")
    print(f"wake from frozen at the edge ({len(thaws)}):      {fmt(thaws, 1)}")
    print(f"bare spawn, .pyc present ({len(bare)}):          {fmt(bare)}")
    print(f"  of which until it listens:            {fmt(bare_listen)}")
    if capped:
        print(f"bare spawn capped at {CAPPED_CPUS:g} CPU ({len(capped)}):         {fmt(capped)}")
        print(f"  of which until it listens:            {fmt(capped_listen)}")
    woke = statistics.median(wakes)
    ratio = woke / statistics.median(bare)
    print(f"wake / bare at p50: {ratio:.2f}× (goal ≤ {GOAL_RATIO}×: {'met' if ratio <= GOAL_RATIO else 'MISSED'}); "
          f"wake p50 {woke:.0f} ms (goal < {GOAL_MS:.0f} ms: {'met' if woke < GOAL_MS else 'MISSED'})")
    thawed_p50 = statistics.median(thaws)
    print(f"wake from frozen p50 {thawed_p50:.1f} ms (goal < {GOAL_FROZEN_MS:.0f} ms: "
          f"{'met' if thawed_p50 < GOAL_FROZEN_MS else 'MISSED'})")
    if capped:
        print(f"wake / bare capped at {CAPPED_CPUS:g} CPU at p50: {woke / statistics.median(capped):.2f}×")

    print()
    print("inside the platform, from `shipyard logs` (app lines stamped when read: up to ~5 ms late):")
    names = list(steps(timelines[0]))
    split = {name: [s[name] for t in timelines if (s := steps(t))[name] is not None] for name in names}
    for name in names:
        print(f"  {name:<70} {fmt(split[name], 1)}")
    print(f"  health probes gunicorn answered before ready: "
          f"{statistics.median([t.probes for t in timelines]):g} (median)")

    if args.markdown:
        print()
        print("| measured (ms) | p50 | p90 | min | max |")
        print("|---|---|---|---|---|")
        rows = [("wake from zero at the edge", wakes), ("wake from frozen at the edge", thaws),
                ("bare spawn, `.pyc` present", bare),
                ("bare spawn: until it listens", bare_listen)]
        if capped:
            rows += [(f"bare spawn capped at {CAPPED_CPUS:g} CPU", capped), ("capped: until it listens", capped_listen)]
        rows += [(f"wake step: {name}", split[name]) for name in names]
        for label, values in rows:
            if values:
                d = 1 if label.startswith(("wake step", "wake from frozen")) else 0
                p50, p90, low, high = stats(values)
                print(f"| {label} | {p50:.{d}f} | {p90:.{d}f} | {low:.{d}f} | {high:.{d}f} |")


if __name__ == "__main__":
    main()
