"""Autoscaling a load step (issue 15): from 1 to 32 concurrent clients, how soon the needed instances are up.

Starts a real `shipyard up` in a temporary data directory with the KPA's default windows (60 s stable, 6 s panic,
30 s scale-down delay: nothing shortened), deploys tests/apps/slow-instance as `bursty` (Flask under gunicorn,
1 worker × 8 threads an instance; `/work?ms=N` sleeps N ms) and autoscales web with `shipyard scale bursty web
--min 1 --max 6 --concurrency 8`. 32 clients on `/work?ms=200` keep 32 requests in flight, so ceil(32 / 8) = 4
instances are needed.

Each round: the app at 1 instance, 1 client for `--warmup` s, then the step to `--clients` clients, held for
`--hold` s, then no load until the app is back at 1 instance (at most `--down-cap` s). Clients are keep-alive httpx
clients through the edge with the app's Host header, each sending its next request when the last one is answered.
A watcher reads `GET /apps/bursty` (what `shipyard apps info` shows) every 100 ms: the web instances that are up,
the formation, and the autoscaler's decisions with their inputs. Measured from the step:

- the first decision asking for more instances (its own timestamp) and the first formation change seen;
- the needed count of web instances up (routed by the edge): the goal is ≤ 6 s, the panic window;
- the most instances seen (over the needed count: overshoot; over --max: a bug), the requests that did not get a
  200 (status or transport error) from the step until the load stopped;
- from the load stopping, the first scale-down and the return to 1 instance (it must wait at least the 30 s delay;
  with the 60 s stable window 60–120 s are expected).

Instance boots (start → health-gated "up") are read from the app's log (`shipyard[web.N]` lines). The decisions of
each round are printed as a timeline relative to the step, then as `shipyard apps info bursty` shows them.

Usage: python bench/autoscale.py [--rounds 1] [--markdown]
Needs what `shipyard up` needs (run as root, like the e2e tests). Takes 2–4 minutes a round.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx

from tests.e2e.harness import Shipyard

APP = "bursty"
GOAL_S = 6.0  # the panic window: the needed instances up within it
POLL = 0.1  # seconds between reads of the app's state


# ------------------------------------------------------------------------------------------------- load

@dataclass
class Answer:
    done: float  # monotonic, when the answer (or the error) came
    seconds: float  # request sent → body read
    status: int | str  # HTTP status, or the transport error's name
    dyno: str  # which instance answered (the body), "" if none


class Load:
    """`clients` keep-alive clients through the edge; `set(n)` makes the first n of them send requests one after
    another (an idle client waits on a condition, not in a loop)."""

    def __init__(self, shipyard: Shipyard, app: str, path: str, clients: int) -> None:
        self._base = f"http://127.0.0.1:{shipyard.edge_port}"
        self._host = f"{app}.localhost:{shipyard.edge_port}"
        self._path = path
        self._active = 0
        self._stopping = False
        self._cond = threading.Condition()
        self._lock = threading.Lock()
        self.answers: list[Answer] = []
        self._threads = [threading.Thread(target=self._client, args=(i,), daemon=True) for i in range(clients)]
        for thread in self._threads:
            thread.start()

    def set(self, clients: int) -> None:
        with self._cond:
            self._active = clients
            self._cond.notify_all()

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        for thread in self._threads:
            thread.join(timeout=40)

    def _client(self, index: int) -> None:
        with httpx.Client(base_url=self._base, timeout=30, headers={"Host": self._host}) as http:
            while True:
                with self._cond:
                    self._cond.wait_for(lambda: self._stopping or index < self._active)
                    if self._stopping:
                        return
                started = time.perf_counter()
                try:
                    response = http.get(self._path)
                    status: int | str = response.status_code
                    dyno = response.text.strip() if status == 200 else ""
                except httpx.HTTPError as exc:
                    status, dyno = type(exc).__name__, ""
                answer = Answer(time.monotonic(), time.perf_counter() - started, status, dyno)
                with self._lock:
                    self.answers.append(answer)

    def between(self, start: float, end: float) -> list[Answer]:
        with self._lock:
            return [a for a in self.answers if start <= a.done < end]


# ------------------------------------------------------------------------------------------------- watching

@dataclass
class Sample:
    at: float  # monotonic
    up: int  # web instances in state "up"
    formation: int  # the formation's web count (what the autoscaler last set)
    states: str  # e.g. "web.1 up, web.2 up"


@dataclass
class Run:
    """Decisions that asked for the same (current → desired, panic), one after another: a line of the timeline."""

    first: float  # wall clock of the first of them
    last: float
    current: int
    desired: int
    panicking: bool
    stable: float
    panic: float
    reason: str


class Watcher:
    """Reads the app's state every POLL seconds: instance counts, and the autoscaler's decisions merged into a
    timeline (the platform keeps the latest of a repeated decision only, so its first time is kept here)."""

    def __init__(self, shipyard: Shipyard, app: str) -> None:
        self._http = httpx.Client(base_url=f"http://127.0.0.1:{shipyard.api_port}", timeout=10,
                                  headers={"Authorization": f"Bearer {shipyard.token}"})
        self._app = app
        self._lock = threading.Lock()
        self.samples: list[Sample] = []
        self.timeline: list[Run] = []
        self.errors = 0
        self._last_at = 0.0
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join(timeout=20)
        self._http.close()

    def latest(self) -> Sample | None:
        with self._lock:
            return self.samples[-1] if self.samples else None

    def since(self, start: float) -> list[Sample]:
        with self._lock:
            return [s for s in self.samples if s.at >= start]

    def decisions(self, start_wall: float) -> list[Run]:
        with self._lock:
            return [r for r in self.timeline if r.last >= start_wall]

    def _watch(self) -> None:
        while not self._stopping.is_set():
            began = time.monotonic()
            try:
                info = self._http.get(f"/apps/{self._app}").json()
            except (httpx.HTTPError, ValueError):
                self.errors += 1
            else:
                web = [i for i in info.get("instances", []) if i["name"].startswith("web.")]
                sample = Sample(began, sum(1 for i in web if i["state"] == "up"),
                                info.get("formation", {}).get("web", 0),
                                ", ".join(f"{i['name']} {i['state']}" for i in web))
                with self._lock:
                    self.samples.append(sample)
                    self._merge(info.get("scaling", []))
            self._stopping.wait(max(0.0, POLL - (time.monotonic() - began)))

    def _merge(self, scaling: list[dict]) -> None:
        for d in scaling:
            at = datetime.fromisoformat(d["at"]).timestamp()
            if at <= self._last_at:
                continue
            self._last_at = at
            same = self.timeline and (self.timeline[-1].current, self.timeline[-1].desired,
                                      self.timeline[-1].panicking) == (d["current"], d["desired"], d["panicking"])
            if same:
                run = self.timeline[-1]
                run.last, run.stable, run.panic, run.reason = at, d["stable_concurrency"], d["panic_concurrency"], \
                    d["reason"]
            else:
                self.timeline.append(Run(at, at, d["current"], d["desired"], d["panicking"], d["stable_concurrency"],
                                         d["panic_concurrency"], d["reason"]))


# ------------------------------------------------------------------------------------------------- the app's log

LOG_LINE = re.compile(r"^(\S+) shipyard\[(web\.\d+)\]: (Starting process|State changed from starting to up|"
                      r"Process exited)")


@dataclass
class Boot:
    name: str
    started: float  # wall clock
    up: float | None  # wall clock, None if it never passed its health check
    stopped: float | None = None


def boots(shipyard: Shipyard, app: str, start_wall: float, end_wall: float) -> list[Boot]:
    """Web instances started between the two times, from the app's log: when each was spawned, passed its health
    gate and (if so) exited."""
    path = shipyard.data_dir / "logs" / app / "app.log"
    found: list[Boot] = []
    open_by_name: dict[str, Boot] = {}
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return found
    for line in lines:
        match = LOG_LINE.match(line)
        if not match:
            continue
        at = datetime.fromisoformat(match[1]).timestamp()
        name, event = match[2], match[3]
        if event == "Starting process":
            if start_wall <= at <= end_wall:
                open_by_name[name] = boot = Boot(name, at, None)
                found.append(boot)
        elif name in open_by_name:
            if event.startswith("State changed") and open_by_name[name].up is None:
                open_by_name[name].up = at
            elif event == "Process exited":
                open_by_name.pop(name).stopped = at
    return found


# ------------------------------------------------------------------------------------------------- a round

@dataclass
class Round:
    number: int
    first_ask: float | None = None  # step → first decision with desired > current (its timestamp)
    formation_changed: float | None = None  # step → first formation > 1 seen
    needed_up: float | None = None  # step → the needed web instances up
    most_up: int = 0
    most_formation: int = 0
    requests: int = 0  # answered from the step until the load stopped
    failed: dict[str, int] = field(default_factory=dict)  # status → count
    p50_ms: float = 0.0
    p95_ms: float = 0.0
    first_down: float | None = None  # load stopped → first formation below its peak
    back_to_one: float | None = None  # load stopped → 1 web instance up and formation 1
    up_steps: list[tuple[float, int]] = field(default_factory=list)  # (s from the step, web up) at each change
    decisions: list[Run] = field(default_factory=list)
    boots: list[Boot] = field(default_factory=list)
    step_wall: float = 0.0
    info_text: str = ""
    note: str = ""


def wait_at_one(watcher: Watcher, timeout: float) -> float | None:
    """Seconds until the app has 1 web instance up and a formation of 1 (None: not within timeout)."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        sample = watcher.latest()
        if sample is not None and sample.at > started and sample.up == 1 and sample.formation == 1:
            return sample.at - started
        time.sleep(POLL / 2)
    return None


def run_round(number: int, shipyard: Shipyard, load: Load, watcher: Watcher, args: argparse.Namespace,
              needed: int) -> Round:
    result = Round(number)
    print(f"round {number}: {args.warmup:g} s at 1 client, then {args.clients} clients for {args.hold:g} s",
          flush=True)
    load.set(1)
    time.sleep(args.warmup)
    step, result.step_wall = time.monotonic(), time.time()
    load.set(args.clients)
    time.sleep(args.hold)
    drop = time.monotonic()
    load.set(0)
    back = wait_at_one(watcher, args.down_cap)
    end_wall = time.time()

    samples = watcher.since(step)
    result.first_ask = next((r.first - result.step_wall for r in watcher.decisions(result.step_wall)
                             if r.first >= result.step_wall and r.desired > r.current), None)
    result.formation_changed = next((s.at - step for s in samples if s.formation > 1), None)
    result.needed_up = next((s.at - step for s in samples if s.up >= needed), None)
    result.most_up = max((s.up for s in samples), default=0)
    result.most_formation = max((s.formation for s in samples), default=0)
    last = None
    for s in samples:
        if s.up != last:
            result.up_steps.append((s.at - step, s.up))
            last = s.up
    answers = load.between(step, drop + 1.0)  # the last requests sent before the drop end within a second
    result.requests = len(answers)
    for a in answers:
        if a.status != 200:
            result.failed[str(a.status)] = result.failed.get(str(a.status), 0) + 1
    times = sorted(a.seconds * 1000 for a in answers if a.status == 200)
    if times:
        result.p50_ms = statistics.median(times)
        result.p95_ms = times[min(len(times) - 1, math.ceil(0.95 * len(times)) - 1)]
    after = [s for s in samples if s.at >= drop]
    result.first_down = next((s.at - drop for s in after if s.formation < result.most_formation), None)
    result.back_to_one = next((s.at - drop for s in after if s.up == 1 and s.formation == 1), None) \
        if back is not None else None
    result.decisions = watcher.decisions(result.step_wall - 2)
    result.boots = boots(shipyard, APP, result.step_wall - 2, end_wall)
    info = shipyard.cli("apps", "info", APP).out
    result.info_text = info[info.index("Scaling decisions"):] if "Scaling decisions" in info else "(no decisions)"
    if back is None:
        result.note = f"not back at 1 instance {args.down_cap:g} s after the load stopped: set to 1 by hand"
        shipyard.cli("scale", APP, "web=1")
        autoscale(shipyard, args)
        wait_at_one(watcher, 60)
    return result


def autoscale(shipyard: Shipyard, args: argparse.Namespace) -> None:
    shipyard.cli("scale", APP, "web", "--min", "1", "--max", str(args.max), "--concurrency", f"{args.concurrency:g}")


# ------------------------------------------------------------------------------------------------- report

def fmt(seconds: float | None, digits: int = 1) -> str:
    return "—" if seconds is None else f"{seconds:.{digits}f}"


def print_round(r: Round, needed: int, args: argparse.Namespace) -> None:
    failed = sum(r.failed.values())
    print(f"round {r.number}: first decision asking for more +{fmt(r.first_ask)} s; formation changed "
          f"+{fmt(r.formation_changed)} s; {needed} instances up +{fmt(r.needed_up)} s; most up {r.most_up} "
          f"(formation {r.most_formation}); {r.requests} requests during the step, {failed} failed"
          f"{' ' + str(r.failed) if failed else ''}; latency p50 {r.p50_ms:.0f} ms, p95 {r.p95_ms:.0f} ms")
    print("  web up (s from the step → count): " + ", ".join(f"{t:+.1f} → {n}" for t, n in r.up_steps))
    print("  decisions (s from the step; first–last of a repeated one):")
    for d in r.decisions:
        span = f"{d.first - r.step_wall:+6.1f}" + (f"…{d.last - r.step_wall:+.1f}" if d.last - d.first >= 0.5 else "")
        print(f"    {span:>16} s  {d.current} → {d.desired}{'  PANIC' if d.panicking else ''}  in flight "
              f"{d.stable:g} (stable), {d.panic:g} (panic)  {d.reason}")
    if r.boots:
        print("  web instances started (s from the step: spawned → up, boot time):")
        for b in r.boots:
            up = f"{b.up - r.step_wall:+.2f}" if b.up else "never up"
            took = f"{b.up - b.started:.2f} s" if b.up else "—"
            stopped = f", stopped {b.stopped - r.step_wall:+.1f}" if b.stopped else ""
            print(f"    {b.name}: {b.started - r.step_wall:+.2f} → {up} ({took}){stopped}")
    print(f"  scale-down after the load stopped: first +{fmt(r.first_down)} s, back at 1 +{fmt(r.back_to_one)} s")
    if r.note:
        print(f"  note: {r.note}")
    print("  " + "\n  ".join(r.info_text.rstrip().splitlines()))


def median_of(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return statistics.median(known) if known else None


def print_summary(rounds: list[Round], needed: int, args: argparse.Namespace) -> None:
    failed = sum(sum(r.failed.values()) for r in rounds)
    requests = sum(r.requests for r in rounds)
    reached = median_of([r.needed_up for r in rounds])
    met = [r.needed_up is not None and r.needed_up <= GOAL_S for r in rounds]
    most = max(r.most_up for r in rounds)
    most_formation = max(r.most_formation for r in rounds)
    over = "over --max!" if max(most, most_formation) > args.max else \
        ("overshoot" if max(most, most_formation) > needed else "no overshoot")
    rows = [
        ("time to first scale-up decision", f"{fmt(median_of([r.first_ask for r in rounds]))} s",
         ", ".join(fmt(r.first_ask) for r in rounds)),
        ("time to first formation change", f"{fmt(median_of([r.formation_changed for r in rounds]))} s",
         ", ".join(fmt(r.formation_changed) for r in rounds)),
        (f"time to {needed} instances up (p50)", f"{fmt(reached)} s", ", ".join(fmt(r.needed_up) for r in rounds)),
        (f"goal met (≤ {GOAL_S:g} s)", f"{'yes' if all(met) else 'no'} ({sum(met)} of {len(rounds)})",
         ", ".join("yes" if m else "no" for m in met)),
        ("max instances seen", f"{most} up, formation {most_formation} ({over}; --max {args.max})",
         ", ".join(str(r.most_up) for r in rounds)),
        ("failed requests during the step", f"{failed} of {requests}",
         ", ".join(str(sum(r.failed.values())) for r in rounds)),
        ("latency during the step, p50 / p95", "", ", ".join(f"{r.p50_ms:.0f} / {r.p95_ms:.0f} ms" for r in rounds)),
        ("first scale-down after the load stopped", f"{fmt(median_of([r.first_down for r in rounds]))} s",
         ", ".join(fmt(r.first_down) for r in rounds)),
        ("back at 1 instance after the load stopped", f"{fmt(median_of([r.back_to_one for r in rounds]))} s",
         ", ".join(fmt(r.back_to_one) for r in rounds)),
    ]
    if args.markdown:
        print("\n| measure | p50 / overall | per round |\n|---|---|---|")
        for name, overall, each in rows:
            print(f"| {name} | {overall} | {each} |")
    else:
        print()
        width = max(len(name) for name, _, _ in rows)
        for name, overall, each in rows:
            print(f"{name + ':':<{width + 1}} {overall:<44} [{each}]")


# ------------------------------------------------------------------------------------------------- main

def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--clients", type=int, default=32, help="clients after the step")
    parser.add_argument("--concurrency", type=float, default=8, help="the autoscaler's target in flight per instance")
    parser.add_argument("--max", type=int, default=6)
    parser.add_argument("--ms", type=int, default=200, help="each request's time in the app")
    parser.add_argument("--warmup", type=float, default=10, help="seconds at 1 client before the step")
    parser.add_argument("--hold", type=float, default=20, help="seconds of the step's load")
    parser.add_argument("--down-cap", type=float, default=180, help="most seconds to wait for the scale-down")
    parser.add_argument("--markdown", action="store_true", help="print the summary as a Markdown table")
    args = parser.parse_args()
    needed = math.ceil(args.clients / args.concurrency)
    if needed > args.max:
        parser.error(f"{args.clients} clients at --concurrency {args.concurrency:g} need {needed} instances, more "
                     f"than --max {args.max}")
    for name in ("SHIPYARD_AUTOSCALE_STABLE_WINDOW", "SHIPYARD_AUTOSCALE_PANIC_WINDOW",
                 "SHIPYARD_AUTOSCALE_SCALE_DOWN_DELAY"):
        os.environ.pop(name, None)  # the KPA's defaults, whatever the caller's environment says
    load_avg = os.getloadavg()
    print(f"load average at start: {load_avg[0]:.2f} {load_avg[1]:.2f} {load_avg[2]:.2f} (1, 5, 15 min); "
          f"{os.cpu_count()} cores")
    print(f"KPA windows: the defaults (60 s stable, 6 s panic, 30 s scale-down delay); tests/apps/slow-instance "
          f"(gunicorn 1 worker × 8 threads); `shipyard scale {APP} web --min 1 --max {args.max} --concurrency "
          f"{args.concurrency:g}`; step 1 → {args.clients} clients on /work?ms={args.ms}: {needed} instances needed",
          flush=True)
    rounds: list[Round] = []
    with tempfile.TemporaryDirectory() as tmp:
        shipyard = Shipyard(Path(tmp))
        load = watcher = None
        shipyard.start()
        try:
            started = time.perf_counter()
            shipyard.cli("apps", "create", APP)
            shipyard.push(shipyard.checkout("slow-instance", APP))
            autoscale(shipyard, args)
            print(f"{APP} deployed and autoscaled in {time.perf_counter() - started:.1f} s", flush=True)
            watcher = Watcher(shipyard, APP)
            load = Load(shipyard, APP, f"/work?ms={args.ms}", args.clients)
            if wait_at_one(watcher, 60) is None:
                raise RuntimeError(f"{APP} is not at 1 web instance: {watcher.latest()}")
            for n in range(1, args.rounds + 1):
                result = run_round(n, shipyard, load, watcher, args, needed)
                rounds.append(result)
                print_round(result, needed, args)
            if watcher.errors:
                print(f"(the watcher's reads failed {watcher.errors} times)")
        finally:
            if load is not None:
                load.stop()
            if watcher is not None:
                watcher.stop()
            shipyard.kill_all()
    if rounds:
        print_summary(rounds, needed, args)
    load_avg = os.getloadavg()
    print(f"load average at the end: {load_avg[0]:.2f} {load_avg[1]:.2f} {load_avg[2]:.2f}")


if __name__ == "__main__":
    main()
