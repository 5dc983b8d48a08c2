"""Density (issue 15): many small apps on one machine, the idle ones frozen and then at zero, the platform's own
memory under 300 MB, and any of them answering from zero within the goal (wake p50 < 250 ms).

Starts a real `shipyard up` in a temporary data directory with short idle timers (SHIPYARD_FREEZE_AFTER=5 s,
SHIPYARD_SCALE_TO_ZERO_AFTER=30 s unless `--freeze-after` / `--zero-after` say otherwise), then:

1. **create** `--apps` apps (the first with `shipyard apps create`, which also installs git's credential helper,
   the rest with the API call it makes, `POST /apps`);
2. **deploy** each with a real `git push` over HTTP of one working copy of tests/apps/flask-hello to each app's git
   URL, `--parallel` pushes at a time; each push is timed (it returns once the release is live), a failed one is
   counted and its last lines printed, and every deployed app is then asked `GET /` through the edge once;
3. **running**: the platform's memory with every app's web instance up (each app has one, as after a first push);
4. **rest**: `shipyard scale APP web --min 0 --max 1` for each app (the CLI's API call, `PUT
   /apps/APP/autoscale/web`), then `GET /apps` (what `shipyard apps` shows) every `--poll` s until no app is up
   (all frozen: the memory is measured), then until all are at zero (measured again). The state counts are
   printed whenever they change, and how long `GET /apps` took;
   An app is "zero" in the API once it has no instance left; its processes stop after that, so the bench waits
   until no app process is left (and says how long that took) before measuring;
5. **wake**: `--wakes` apps picked at random among those at zero, one after another, `GET /` through the edge
   (127.0.0.1:<edge port>, Host `<app>.localhost`): request sent → the whole 200 with the app's body.

Each stage also measures the CPU each class used over `--cpu-window` seconds (5) before its memory is read. At the
end, the platform's warnings and errors (its own output, its lines in the apps' logs) are listed, and the apps whose
gunicorn master logged `WORKER TIMEOUT` (workers killed for heartbeats missed while frozen) are counted.

Memory, at each stage: every descendant of the `shipyard up` process, its RSS and PSS from
/proc/PID/smaps_rollup, classed by what it is: the platform's Python process itself, the edge (HAProxy), the
database (PostgreSQL's processes), other platform processes (anything else it started outside an app's cgroup:
git, builds' helpers, …), and the apps' processes (inside a cgroup of the platform's `shipyard-<uid base>` tree:
instances, their sandbox). PSS shares each page among the processes that map it, so the PSS of a class is what it
costs the machine; RSS counts shared pages (PostgreSQL's shared buffers, libraries) once per process. The goal is
judged on the platform's PSS total with the apps at zero (MB = 10^6 bytes).

Usage: python bench/density.py [--apps 200] [--parallel 2] [--wakes 20] [--freeze-after 5] [--zero-after 30]
                               [--poll 2] [--seed N] [--keep-logs DIR] [--markdown]
Needs what `shipyard up` needs (run as root, like the e2e tests). Stops what it started by pid, also on Ctrl-C.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx  # noqa: E402

from tests.e2e.harness import Shipyard, descendants  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cold_start import get_once  # noqa: E402  (one GET / with Connection: close, read to its end)

SAMPLE = "flask-hello"
BODY = "Hello from flask-hello v1\n"
PREFIX = "dense"
GOAL_APPS = 200
GOAL_PLATFORM_MB = 300.0
GOAL_WAKE_MS = 250.0
MB = 1_000_000


# ------------------------------------------------------------------------------------------------- memory

CLASSES = ("platform (shipyard up, Python)", "edge (HAProxy)", "database (PostgreSQL)", "other platform processes")


@dataclass
class ClassMemory:
    processes: int = 0
    rss: int = 0  # bytes
    pss: int = 0
    cpu: float = 0.0  # seconds of CPU used during the measure's window
    names: Counter[str] = field(default_factory=Counter)


@dataclass
class Memory:
    stage: str
    classes: dict[str, ClassMemory]
    apps: ClassMemory
    unreadable: int = 0
    window: float = 0.0  # seconds over which the CPU was measured

    @property
    def platform_cpu(self) -> float:
        """Percent of one core the platform's processes used during the window."""
        return 100 * sum(c.cpu for c in self.classes.values()) / self.window if self.window else 0.0

    def cpu_of(self, c: ClassMemory) -> float:
        return 100 * c.cpu / self.window if self.window else 0.0

    @property
    def platform_pss(self) -> int:
        return sum(c.pss for c in self.classes.values())

    @property
    def platform_rss(self) -> int:
        return sum(c.rss for c in self.classes.values())

    @property
    def platform_processes(self) -> int:
        return sum(c.processes for c in self.classes.values())


def rollup(pid: int) -> tuple[int, int]:
    """(RSS, PSS) in bytes from /proc/PID/smaps_rollup."""
    rss = pss = 0
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key == "Rss":
            rss = int(rest.split()[0]) * 1024
        elif key == "Pss":
            pss = int(rest.split()[0]) * 1024
    return rss, pss


def classify(pid: int, platform_pid: int, app_cgroup: str) -> tuple[str, str]:
    """(class, short name) of one of the platform's descendants; class "apps" for an app's process."""
    if pid == platform_pid:
        return CLASSES[0], "shipyard up"
    argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    cmd = b" ".join(a for a in argv if a).decode(errors="replace")
    comm = Path(f"/proc/{pid}/comm").read_text().strip()
    if f"/{app_cgroup}/" in Path(f"/proc/{pid}/cgroup").read_text():
        return "apps", comm
    first = os.path.basename(argv[0].decode(errors="replace")) if argv and argv[0] else comm
    if first.startswith("haproxy") or comm.startswith("haproxy"):
        return CLASSES[1], "haproxy"
    if first.startswith(("postgres", "postmaster")) or cmd.startswith("postgres:") or comm.startswith("postgres"):
        return CLASSES[2], "postgres"
    return CLASSES[3], comm or first


TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU the process has used (threads included), from /proc/PID/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime, stime: the 14th and 15th fields


def cpu_snapshot(platform_pid: int) -> dict[int, float]:
    found = {}
    for pid in {platform_pid, *descendants(platform_pid)}:
        try:
            found[pid] = cpu_seconds(pid)
        except (OSError, IndexError, ValueError):
            continue
    return found


def measure(shipyard: Shipyard, stage: str, window: float = 0.0) -> Memory:
    """Memory of each class of the platform's processes now, and the CPU each used over the `window` seconds
    before (processes that existed at both ends of it)."""
    assert shipyard.proc is not None
    platform_pid = shipyard.proc.pid
    app_cgroup = f"shipyard-{shipyard.env['SHIPYARD_UID_BASE']}"
    memory = Memory(stage, {name: ClassMemory() for name in CLASSES}, ClassMemory(), window=window)
    before: dict[int, float] = {}
    if window:
        before = cpu_snapshot(platform_pid)
        time.sleep(window)
    seen: dict[int, tuple[str, str, int, int, float]] = {}  # pid → (class, name, rss, pss, cpu)
    for pid in sorted({platform_pid, *descendants(platform_pid)}):
        try:
            kind, name = classify(pid, platform_pid, app_cgroup)
            rss, pss = rollup(pid)
            cpu = cpu_seconds(pid) - before[pid] if pid in before else 0.0
        except (OSError, ValueError, IndexError):
            memory.unreadable += 1  # gone meanwhile, or a kernel thread's empty rollup
            continue
        seen[pid] = (kind, name, rss, pss, cpu)
    for pid, (kind, name, rss, pss, cpu) in seen.items():
        if kind == CLASSES[3]:
            # A wrapper the platform starts a helper in (PostgreSQL runs inside bubblewrap): the helper's class.
            below = {seen[d][0] for d in descendants(pid) if d in seen} - {CLASSES[3]}
            if len(below) == 1:
                kind = below.pop()
        target = memory.apps if kind == "apps" else memory.classes[kind]
        target.processes += 1
        target.rss += rss
        target.pss += pss
        target.cpu += cpu
        target.names[name] += 1
    return memory


def app_processes(shipyard: Shipyard) -> int:
    """How many of the platform's descendants are in an app's cgroup."""
    assert shipyard.proc is not None
    app_cgroup = f"/shipyard-{shipyard.env['SHIPYARD_UID_BASE']}/"
    count = 0
    for pid in descendants(shipyard.proc.pid):
        try:
            count += app_cgroup in Path(f"/proc/{pid}/cgroup").read_text()
        except OSError:
            continue
    return count


def mb(value: int) -> str:
    return f"{value / MB:8.1f}"


def print_memory(memory: Memory) -> None:
    print(f"memory, {memory.stage} (MB = 10^6 bytes; PSS shares pages among the processes mapping them; CPU: % of "
          f"one core over the {memory.window:g} s before):")
    print(f"  {'':<34} {'procs':>5} {'RSS MB':>8} {'PSS MB':>8} {'CPU %':>6}")
    for name, c in memory.classes.items():
        extra = ""
        if name == CLASSES[3] and c.names:
            extra = "  (" + ", ".join(f"{n} ×{k}" for n, k in c.names.most_common(6)) + ")"
        print(f"  {name:<34} {c.processes:>5} {mb(c.rss)} {mb(c.pss)} {memory.cpu_of(c):6.1f}{extra}")
    print(f"  {'platform total':<34} {memory.platform_processes:>5} {mb(memory.platform_rss)} "
          f"{mb(memory.platform_pss)} {memory.platform_cpu:6.1f}")
    a = memory.apps
    print(f"  {'apps (instances, their sandboxes)':<34} {a.processes:>5} {mb(a.rss)} {mb(a.pss)} "
          f"{memory.cpu_of(a):6.1f}"
          + ("  (" + ", ".join(f"{n} ×{k}" for n, k in a.names.most_common(4)) + ")" if a.names else ""))
    if memory.unreadable:
        print(f"  ({memory.unreadable} processes exited while read)")


# ------------------------------------------------------------------------------------------------- the API

class Api:
    def __init__(self, shipyard: Shipyard) -> None:
        self.http = httpx.Client(base_url=f"http://127.0.0.1:{shipyard.api_port}", timeout=120,
                                 headers={"Authorization": f"Bearer {shipyard.token}"})
        self.list_times: list[float] = []  # seconds each GET /apps took

    def close(self) -> None:
        self.http.close()

    def apps(self) -> dict[str, dict]:
        started = time.perf_counter()
        response = self.http.get("/apps")
        self.list_times.append(time.perf_counter() - started)
        response.raise_for_status()
        return {a["name"]: a for a in response.json()}

    def create(self, name: str) -> None:
        self.http.post("/apps", json={"name": name}).raise_for_status()

    def rest(self, name: str) -> httpx.Response:
        """What `shipyard scale NAME web --min 0 --max 1` asks (the CLI's default concurrency, 20)."""
        return self.http.put(f"/apps/{name}/autoscale/web", json={"min": 0, "max": 1, "concurrency": 20})


def state_counts(apps: dict[str, dict], names: list[str]) -> Counter[str]:
    return Counter(apps[n]["state"] if n in apps else "missing" for n in names)


def describe(counts: Counter[str]) -> str:
    order = ["up", "starting", "frozen", "zero", "crashed", "down", "unreachable", "new", "damaged", "missing"]
    keys = sorted(counts, key=lambda k: order.index(k) if k in order else len(order))
    return ", ".join(f"{k} {counts[k]}" for k in keys)


def watch(api: Api, names: list[str], done: callable, since: float, timeout: float, poll: float,
          shipyard: Shipyard) -> tuple[float | None, Counter[str], dict[str, float]]:
    """Read GET /apps every `poll` s, print the state counts when they change, until done(counts). Returns (seconds
    from `since` when done, None on timeout; the last counts; for each state, the seconds from `since` when the
    first app was seen in it)."""
    last: Counter[str] | None = None
    first_seen: dict[str, float] = {}
    deadline = time.monotonic() + timeout
    errors = 0
    while True:
        if shipyard.proc is None or shipyard.proc.poll() is not None:
            raise RuntimeError("shipyard up exited")
        began = time.monotonic()
        try:
            counts = state_counts(api.apps(), names)
        except (httpx.HTTPError, ValueError) as exc:
            errors += 1
            print(f"  +{began - since:7.1f} s  GET /apps failed: {type(exc).__name__}: {exc}", flush=True)
            counts = last or Counter()
        else:
            for state in counts:
                first_seen.setdefault(state, began - since)
            if counts != last:
                print(f"  +{began - since:7.1f} s  {describe(counts)}   (GET /apps {api.list_times[-1] * 1000:.0f} ms; "
                      f"{time.strftime('%H:%M:%S', time.gmtime())} UTC)", flush=True)
                last = counts
            if done(counts):
                return began - since, counts, first_seen
        if time.monotonic() > deadline:
            return None, counts, first_seen
        time.sleep(max(0.0, poll - (time.monotonic() - began)))


# ---------------------------------------------------------------------------------------------- deploying

@dataclass
class Push:
    app: str
    ok: bool
    seconds: float
    tail: str


def push(shipyard: Shipyard, work: Path, app: str, timeout: float) -> Push:
    started = time.perf_counter()
    try:
        done = subprocess.run(["git", "push", shipyard.git_url(app), "main"], cwd=work, env=shipyard.env,
                              capture_output=True, text=True, timeout=timeout)
        ok, text = done.returncode == 0, done.stdout + done.stderr
        if not ok:
            text += f"\n(git push exited with {done.returncode})"
    except subprocess.TimeoutExpired as exc:
        ok = False
        text = ((exc.stdout or b"").decode(errors="replace") if isinstance(exc.stdout, bytes) else (exc.stdout or "")) \
            + f"\n(git push timed out after {timeout:g} s)"
    seconds = time.perf_counter() - started
    tail = "\n".join(text.strip().splitlines()[-12:])
    return Push(app, ok, seconds, tail)


# ------------------------------------------------------------------------------------------------- figures

def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    position = (len(ordered) - 1) * q
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def spread(values: list[float], unit: str, digits: int = 0) -> str:
    if not values:
        return "n/a"
    return (f"p50 {pct(values, 0.5):.{digits}f}  p90 {pct(values, 0.9):.{digits}f}  "
            f"max {max(values):.{digits}f} {unit}")


def fmt_s(seconds: float | None) -> str:
    return "—" if seconds is None else f"+{seconds:.1f} s"


def worker_timeouts(shipyard: Shipyard, names: list[str]) -> dict[str, list[str]]:
    """Apps whose gunicorn master killed its workers for missing heartbeats (`WORKER TIMEOUT`): app → the times.
    A freeze stops the heartbeats too; the platform thaws workers before their master so that it does not."""
    found: dict[str, list[str]] = {}
    for name in names:
        try:
            lines = (shipyard.data_dir / "logs" / name / "app.log").read_text(errors="replace").splitlines()
        except OSError:
            continue
        stamps = [line.split(" ", 1)[0][11:23] for line in lines if "WORKER TIMEOUT" in line]
        if stamps:
            found[name] = stamps
    return found


def platform_problems(shipyard: Shipyard, names: list[str]) -> list[str]:
    """Warnings and errors in `shipyard up`'s own output and the platform's lines in the apps' logs."""
    found: list[str] = []
    pattern = re.compile(r"Traceback|ERROR|CRITICAL|WARNING|Exception|Too many open files|failed|timed out",
                         re.IGNORECASE)
    for line in shipyard.up_log().splitlines():
        if pattern.search(line):
            found.append(f"shipyard up: {line.strip()[:300]}")
    for name in names:
        path = shipyard.data_dir / "logs" / name / "app.log"
        try:
            lines = path.read_text(errors="replace").splitlines()
        except OSError:
            continue
        for line in lines:
            if " shipyard[" in line and pattern.search(line):
                found.append(f"{name}: {line.strip()[:300]}")
    return found


# ------------------------------------------------------------------------------------------------- main

@dataclass
class Results:
    load: tuple[float, float, float]
    apps: int
    created_s: float = 0.0
    pushes: list[Push] = field(default_factory=list)
    deploy_s: float = 0.0
    edge_failed: list[str] = field(default_factory=list)
    rest_s: float | None = None  # None: the apps were not scaled (the run stopped before)
    rest_failed: list[str] = field(default_factory=list)
    all_frozen_s: float | None = None  # from the last scale: no app up any more
    frozen_counts: Counter[str] = field(default_factory=Counter)
    all_zero_s: float | None = None
    zero_counts: Counter[str] = field(default_factory=Counter)
    first_frozen_s: float | None = None
    first_zero_s: float | None = None
    zero_lag_s: float | None = None  # from GET /apps saying all at zero to no app process left
    zero_lag_left: int = 0
    memory: list[Memory] = field(default_factory=list)
    wakes: list[float] = field(default_factory=list)  # ms
    wake_failed: list[str] = field(default_factory=list)
    api_list_ms: list[float] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    worker_timeouts: dict[str, list[str]] = field(default_factory=dict)

    def stage(self, name: str) -> Memory | None:
        return next((m for m in self.memory if m.stage == name), None)


def run(args: argparse.Namespace, shipyard: Shipyard, results: Results) -> None:
    names = [f"{PREFIX}-{i:03d}" for i in range(1, args.apps + 1)]
    print(f"shipyard up: API 127.0.0.1:{shipyard.api_port}, edge 127.0.0.1:{shipyard.edge_port}, pid "
          f"{shipyard.proc.pid}; SHIPYARD_FREEZE_AFTER={args.freeze_after:g} SHIPYARD_SCALE_TO_ZERO_AFTER="
          f"{args.zero_after:g}", flush=True)
    empty = measure(shipyard, "just started, no app", args.cpu_window)
    results.memory.append(empty)
    print_memory(empty)

    # 1. create
    started = time.perf_counter()
    shipyard.cli("apps", "create", names[0])
    api = Api(shipyard)
    try:
        for name in names[1:]:
            api.create(name)
        results.created_s = time.perf_counter() - started
        print(f"\ncreated {len(names)} apps in {results.created_s:.1f} s", flush=True)

        # 2. deploy
        work = shipyard.checkout(SAMPLE, names[0])
        print(f"deploying {len(names)} apps with git push of tests/apps/{SAMPLE}, {args.parallel} at a time …",
              flush=True)
        started = time.perf_counter()
        pool = ThreadPoolExecutor(max_workers=args.parallel)
        try:
            futures = [pool.submit(push, shipyard, work, name, args.push_timeout) for name in names]
            for n, future in enumerate(as_completed(futures), 1):
                result = future.result()
                results.pushes.append(result)
                if not result.ok:
                    print(f"  PUSH FAILED: {result.app} after {result.seconds:.1f} s:\n    "
                          + result.tail.replace("\n", "\n    "), flush=True)
                if n % args.progress == 0 or n == len(names):
                    failed = sum(1 for p in results.pushes if not p.ok)
                    recent = [p.seconds for p in results.pushes[-args.progress:]]
                    print(f"  {n:4d}/{len(names)} pushed, {failed} failed, +{time.perf_counter() - started:6.1f} s "
                          f"(last {len(recent)}: median {statistics.median(recent):.2f} s a push); load "
                          f"{os.getloadavg()[0]:.2f}", flush=True)
        finally:
            pool.shutdown(wait=False, cancel_futures=True)
        results.deploy_s = time.perf_counter() - started
        shipyard.remember_children()
        deployed = [p.app for p in results.pushes if p.ok]
        deployed.sort()
        ok_times = [p.seconds for p in results.pushes if p.ok]
        print(f"deploy phase: {len(deployed)} of {len(names)} deployed in {results.deploy_s:.1f} s "
              f"({len(names) - len(deployed)} failed); push to live {spread(ok_times, 's', 2)}", flush=True)

        for name in deployed:
            try:
                status, body = get_once(shipyard.edge_port, f"{name}.localhost:{shipyard.edge_port}", timeout=30)
            except OSError as exc:
                status, body = 0, f"{type(exc).__name__}: {exc}"
            if status != 200 or body != BODY:
                results.edge_failed.append(f"{name}: {status} {body[:120]!r}")
        print(f"GET / through the edge after the deploys: {len(deployed) - len(results.edge_failed)} of "
              f"{len(deployed)} answered 200 with the app's body"
              + ("".join(f"\n  {line}" for line in results.edge_failed[:10])), flush=True)
        if not deployed:
            raise RuntimeError("no app was deployed")

        # 3. all running
        since = time.monotonic()
        up_s, counts, _ = watch(api, deployed, lambda c: c.get("up", 0) == len(deployed), since, 60, args.poll,
                                shipyard)
        running = measure(shipyard, f"all running ({counts.get('up', 0)} of {len(deployed)} apps up)", args.cpu_window)
        results.memory.append(running)
        print_memory(running)

        # 4. rest: frozen, then zero
        print("\nscale each app web --min 0 --max 1 (PUT /apps/APP/autoscale/web) …", flush=True)
        started = time.perf_counter()
        for name in deployed:
            response = api.rest(name)
            if response.status_code != 200:
                results.rest_failed.append(f"{name}: {response.status_code} {response.text[:200]}")
        results.rest_s = time.perf_counter() - started
        print(f"scaled {len(deployed) - len(results.rest_failed)} of {len(deployed)} in {results.rest_s:.1f} s"
              + "".join(f"\n  FAILED {line}" for line in results.rest_failed[:10]), flush=True)
        resting = [n for n in deployed if n not in {f.split(":")[0] for f in results.rest_failed}]
        since = time.monotonic()
        print(f"watching GET /apps every {args.poll:g} s (s from the last scale):", flush=True)
        resting_states = {"frozen", "zero"}
        results.all_frozen_s, results.frozen_counts, first = watch(
            api, resting, lambda c: sum(c.get(s, 0) for s in resting_states) == len(resting), since,
            args.freeze_after + args.stage_timeout, args.poll, shipyard)
        results.first_frozen_s = first.get("frozen")
        frozen = measure(shipyard, f"idle apps frozen ({describe(results.frozen_counts)})", args.cpu_window)
        results.memory.append(frozen)
        if results.all_frozen_s is None:
            print(f"  not all frozen or at zero within {args.freeze_after + args.stage_timeout:g} s", flush=True)
        print_memory(frozen)
        print(flush=True)
        results.all_zero_s, results.zero_counts, first2 = watch(
            api, resting, lambda c: c.get("zero", 0) == len(resting), since,
            args.zero_after + args.stage_timeout, args.poll, shipyard)
        results.first_frozen_s = results.first_frozen_s if results.first_frozen_s is not None else first2.get("frozen")
        results.first_zero_s = first.get("zero", first2.get("zero"))
        if results.all_zero_s is None:
            print(f"  not all at zero within {args.zero_after + args.stage_timeout:g} s", flush=True)
        # The API says zero once an app has no instance left to route to; its processes are stopped after that.
        waited = time.monotonic()
        while (left := app_processes(shipyard)) and time.monotonic() - waited < args.stage_timeout:
            time.sleep(0.1)
        results.zero_lag_s = time.monotonic() - waited
        results.zero_lag_left = left
        print(f"  the apps' last processes were gone {results.zero_lag_s:.1f} s after GET /apps said they were all at "
              f"zero" if not left else f"  {left} app processes still running {results.zero_lag_s:.0f} s after GET "
              "/apps said all apps were at zero", flush=True)
        zero = measure(shipyard, f"idle apps at zero ({describe(results.zero_counts)})", args.cpu_window)
        results.memory.append(zero)
        print_memory(zero)

        # 5. wake
        at_zero = sorted(n for n, a in api.apps().items() if n in resting and a["state"] == "zero")
        picked = random.Random(args.seed).sample(at_zero, min(args.wakes, len(at_zero)))
        print(f"\nwaking {len(picked)} apps at zero, one after another (GET / through the edge):", flush=True)
        for name in picked:
            time.sleep(args.wake_gap)
            sent = time.perf_counter()
            try:
                status, body = get_once(shipyard.edge_port, f"{name}.localhost:{shipyard.edge_port}", timeout=60)
            except OSError as exc:
                status, body = 0, f"{type(exc).__name__}: {exc}"
            took = (time.perf_counter() - sent) * 1000
            if status == 200 and body == BODY:
                results.wakes.append(took)
                print(f"  {name}: {took:6.0f} ms", flush=True)
            else:
                results.wake_failed.append(f"{name}: {status} after {took:.0f} ms: {body[:160]!r}")
                print(f"  {name}: FAILED {status} after {took:.0f} ms: {body[:160]!r}", flush=True)
        after = measure(shipyard, f"after the wakes ({len(results.wakes)} apps woken)", args.cpu_window)
        results.memory.append(after)
        print_memory(after)
        results.api_list_ms = [t * 1000 for t in api.list_times]
    finally:
        api.close()
        results.problems = platform_problems(shipyard, names)
        results.worker_timeouts = worker_timeouts(shipyard, names)


def summary(args: argparse.Namespace, r: Results) -> None:
    deployed = sum(1 for p in r.pushes if p.ok)
    failed_pushes = [p for p in r.pushes if not p.ok]
    zero = r.stage(next((m.stage for m in r.memory if m.stage.startswith("idle apps at zero")), ""))
    frozen = r.stage(next((m.stage for m in r.memory if m.stage.startswith("idle apps frozen")), ""))
    running = r.stage(next((m.stage for m in r.memory if m.stage.startswith("all running")), ""))
    wake_p50 = statistics.median(r.wakes) if r.wakes else None
    resting = deployed - len(r.rest_failed)

    def verdict(ok: bool | None) -> str:
        return "n/a" if ok is None else ("met" if ok else "MISSED")

    goal_apps = deployed >= GOAL_APPS and not r.edge_failed
    goal_rest = None if r.rest_s is None else (r.all_frozen_s is not None and r.all_zero_s is not None
                                               and resting == deployed and deployed > 0)
    goal_memory = None if zero is None or r.all_zero_s is None else zero.platform_pss / MB < GOAL_PLATFORM_MB
    goal_wake = None if wake_p50 is None else (wake_p50 < GOAL_WAKE_MS and not r.wake_failed)

    rows: list[tuple[str, str]] = [
        ("load average at start", f"{r.load[0]:.2f} {r.load[1]:.2f} {r.load[2]:.2f} (1, 5, 15 min); "
                                  f"{os.cpu_count()} cores"),
        ("idle timers", f"freeze after {args.freeze_after:g} s, zero after {args.zero_after:g} s"),
        ("apps created", f"{r.apps} in {r.created_s:.1f} s"),
        ("apps deployed (git push)", f"{deployed} of {r.apps}, {len(failed_pushes)} failed; {r.deploy_s:.0f} s "
                                     f"with {args.parallel} at a time"),
        ("push to live, per app", spread([p.seconds for p in r.pushes if p.ok], "s", 2)),
        ("answering 200 through the edge after deploy", f"{deployed - len(r.edge_failed)} of {deployed}"),
        ("scale --min 0 --max 1",
         "not done" if r.rest_s is None else f"{resting} of {deployed} in {r.rest_s:.1f} s"),
        ("no app up any more (all frozen or zero)",
         "not reached" if r.all_frozen_s is None else f"{r.all_frozen_s:.1f} s after the last scale "
         f"({describe(r.frozen_counts)}; first app frozen {fmt_s(r.first_frozen_s)}, first at zero "
         f"{fmt_s(r.first_zero_s)})"),
        ("all at zero", "not reached" if r.all_zero_s is None else
         f"{r.all_zero_s:.1f} s after the last scale ({describe(r.zero_counts)}); their last processes gone "
         + (f"{r.zero_lag_s:.1f} s later" if not r.zero_lag_left else f"— {r.zero_lag_left} still running "
            f"{r.zero_lag_s:.0f} s later")),
    ]
    for memory, label in ((running, "all running"), (frozen, "frozen"), (zero, "at zero")):
        if memory is None:
            continue
        rows.append((f"platform memory, {label} (PSS / RSS)",
                     f"{memory.platform_pss / MB:.0f} / {memory.platform_rss / MB:.0f} MB, CPU "
                     f"{memory.platform_cpu:.1f} % of a core (Python "
                     f"{memory.classes[CLASSES[0]].pss / MB:.0f}, HAProxy {memory.classes[CLASSES[1]].pss / MB:.0f}, "
                     f"PostgreSQL {memory.classes[CLASSES[2]].pss / MB:.0f}, other "
                     f"{memory.classes[CLASSES[3]].pss / MB:.0f} MB PSS)"))
        rows.append((f"apps' processes, {label} (PSS / RSS)",
                     f"{memory.apps.pss / MB:.0f} / {memory.apps.rss / MB:.0f} MB in {memory.apps.processes} "
                     f"processes, CPU {memory.cpu_of(memory.apps):.1f} % of a core"))
    rows += [
        ("wake from zero at the edge", f"{spread(r.wakes, 'ms')} over {len(r.wakes)}"
                                       + (f", {len(r.wake_failed)} failed" if r.wake_failed else "")),
        ("GET /apps while watching", spread(r.api_list_ms, "ms") + f" over {len(r.api_list_ms)}"),
        ("apps whose gunicorn logged WORKER TIMEOUT", f"{len(r.worker_timeouts)} of {deployed}"),
        (f"goal: ≥ {GOAL_APPS} apps deployed and answering", verdict(goal_apps)),
        ("goal: idle apps frozen, then at zero", verdict(goal_rest)),
        (f"goal: platform memory at zero < {GOAL_PLATFORM_MB:g} MB (PSS)",
         verdict(goal_memory) + ("" if zero is None else f" ({zero.platform_pss / MB:.0f} MB; RSS summed "
                                                           f"{zero.platform_rss / MB:.0f} MB)")),
        (f"goal: wake p50 < {GOAL_WAKE_MS:g} ms", verdict(goal_wake)
         + ("" if wake_p50 is None else f" ({wake_p50:.0f} ms)")),
    ]
    print()
    if args.markdown:
        print("| measure | result |\n|---|---|")
        for name, value in rows:
            print(f"| {name} | {value} |")
        print()
        print("| platform memory, MB (PSS / RSS) | " + " | ".join(m.stage for m in r.memory) + " |")
        print("|---|" + "---|" * len(r.memory))
        for name in CLASSES:
            print(f"| {name} | " + " | ".join(f"{m.classes[name].pss / MB:.1f} / {m.classes[name].rss / MB:.1f}"
                                             for m in r.memory) + " |")
        print("| **platform total** | " + " | ".join(f"**{m.platform_pss / MB:.1f}** / {m.platform_rss / MB:.1f}"
                                                    for m in r.memory) + " |")
        print("| apps' processes | " + " | ".join(f"{m.apps.pss / MB:.1f} / {m.apps.rss / MB:.1f} "
                                                  f"({m.apps.processes})" for m in r.memory) + " |")
        print("| CPU, % of a core: platform / apps | " + " | ".join(f"{m.platform_cpu:.1f} / {m.cpu_of(m.apps):.1f}"
                                                                  for m in r.memory) + " |")
    else:
        width = max(len(name) for name, _ in rows)
        for name, value in rows:
            print(f"{name + ':':<{width + 1}} {value}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--apps", type=int, default=200)
    parser.add_argument("--parallel", type=int, default=2, help="git pushes at a time")
    parser.add_argument("--wakes", type=int, default=20, help="apps at zero to wake, one after another")
    parser.add_argument("--freeze-after", type=float, default=5, help="SHIPYARD_FREEZE_AFTER, seconds")
    parser.add_argument("--zero-after", type=float, default=30, help="SHIPYARD_SCALE_TO_ZERO_AFTER, seconds")
    parser.add_argument("--poll", type=float, default=2, help="seconds between reads of GET /apps")
    parser.add_argument("--stage-timeout", type=float, default=300,
                        help="seconds past a timer to wait for all apps to reach its state")
    parser.add_argument("--push-timeout", type=float, default=600, help="seconds a git push may take")
    parser.add_argument("--wake-gap", type=float, default=0.5, help="seconds between two wakes")
    parser.add_argument("--cpu-window", type=float, default=5,
                        help="seconds over which each stage's CPU use is measured, before its memory")
    parser.add_argument("--progress", type=int, default=20, help="print the deploy's progress every N pushes")
    parser.add_argument("--seed", type=int, default=15, help="which apps are woken")
    parser.add_argument("--keep-logs", type=Path, metavar="DIR",
                        help="copy shipyard up's output and the apps' logs there before the data directory goes")
    parser.add_argument("--markdown", action="store_true", help="print the summary as Markdown tables")
    args = parser.parse_args()
    if args.freeze_after >= args.zero_after:
        parser.error("--freeze-after must be shorter than --zero-after (otherwise the platform never freezes)")

    def stop_on_term(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, stop_on_term)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # Ctrl-C, even when started with SIGINT ignored (`&`)
    load = os.getloadavg()
    print(f"load average at start: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} (1, 5, 15 min); {os.cpu_count()} cores",
          flush=True)
    results = Results(load, args.apps)
    failure: BaseException | None = None
    with tempfile.TemporaryDirectory(prefix="shipyard-density-") as tmp:
        shipyard = Shipyard(Path(tmp))
        shipyard.env["SHIPYARD_FREEZE_AFTER"] = f"{args.freeze_after:g}"
        shipyard.env["SHIPYARD_SCALE_TO_ZERO_AFTER"] = f"{args.zero_after:g}"
        try:
            shipyard.start()
            run(args, shipyard, results)
        except BaseException as exc:  # noqa: BLE001 — reported below, after everything is stopped
            failure = exc
        finally:
            if args.keep_logs:
                try:
                    args.keep_logs.mkdir(parents=True, exist_ok=True)
                    (args.keep_logs / "shipyard-up.log").write_text(shipyard.up_log())
                    if (shipyard.data_dir / "logs").is_dir():
                        shutil.copytree(shipyard.data_dir / "logs", args.keep_logs / "logs", dirs_exist_ok=True)
                    print(f"(logs kept in {args.keep_logs})")
                except OSError as exc:
                    print(f"(could not keep the logs: {exc})")
            stopped = time.perf_counter()
            try:
                shipyard.kill_all()
            except AssertionError as exc:  # the harness killed them by pid, and says which
                print(f"(after stopping shipyard up: {exc}; killed by pid)")
            print(f"(shipyard up stopped in {time.perf_counter() - stopped:.1f} s)", flush=True)
    if results.problems:
        print(f"\nwarnings and errors the platform logged ({len(results.problems)}; the first 15):")
        for line in results.problems[:15]:
            print(f"  {line}")
    if results.worker_timeouts:
        stamps = sorted(t for times in results.worker_timeouts.values() for t in times)
        print(f"\ngunicorn's master killed workers for missed heartbeats (WORKER TIMEOUT) in "
              f"{len(results.worker_timeouts)} apps, {len(stamps)} lines, {stamps[0]}–{stamps[-1]} UTC (e.g. "
              f"{', '.join(sorted(results.worker_timeouts)[:5])})")
    if results.pushes:
        summary(args, results)
    if failure is not None:
        if isinstance(failure, KeyboardInterrupt):
            print(f"\ninterrupted ({str(failure) or 'Ctrl-C'}): everything started was stopped; the figures above "
                  "are partial")
            sys.exit(130)
        raise failure


if __name__ == "__main__":
    main()
