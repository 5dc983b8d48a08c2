"""Recovery from faults under load: how long each takes, how many requests fail, whether rows are lost.

Starts a real `shipyard up` in a temporary data directory with tests/apps/flask-todo (PostgreSQL add-on,
release phase, a web and a worker process). For each fault, four keep-alive client threads on loopback
read the database through the edge (GET /db-info: a query per request) and one more adds rows
(POST /todos), from 1 s before the fault to 1 s after the recovery. A failure is an error status (≥ 500)
or no response at all. Rows lost: rows the app acknowledged (201) and the database no longer has.

Recovery, per fault: from the kill to the first 200 through the edge (edge, database, single instance),
to three instances up again (one of three: the app keeps answering meanwhile), from the `shipyard up`
restart command to the first 200 (`shipyard up` killed; the old run's processes must all be gone first).
Usage: python bench/faults.py [--rounds N]
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.e2e.harness import Shipyard, descendants, pid_alive  # noqa: E402
from tests.e2e.test_faults import (PathLoad, Writer, edge_pid, postmaster_pid, seconds_until_ok,  # noqa: E402
                                   web_pids)

APP = "bench"
READ = "/db-info"
BOUND = 60.0  # no recovery may take longer: the bench fails instead of hanging


def kill_edge(shipyard: Shipyard) -> float:
    os.kill(edge_pid(shipyard), signal.SIGKILL)
    return seconds_until_ok(shipyard, APP, READ, time.monotonic(), BOUND)


def kill_database(shipyard: Shipyard) -> float:
    os.kill(postmaster_pid(shipyard), signal.SIGKILL)
    return seconds_until_ok(shipyard, APP, READ, time.monotonic(), BOUND)


def kill_one_of_three(shipyard: Shipyard) -> float:
    victim = web_pids(shipyard, APP)[1]
    os.kill(victim, signal.SIGKILL)
    killed = time.monotonic()
    shipyard.wait_for(lambda: len(now := web_pids(shipyard, APP)) == 3 and victim not in now, timeout=BOUND,
                      interval=0.02)
    return time.monotonic() - killed


def kill_single_instance(shipyard: Shipyard) -> float:
    [victim] = web_pids(shipyard, APP)
    os.kill(victim, signal.SIGKILL)
    killed = time.monotonic()
    shipyard.wait_for(lambda: victim not in web_pids(shipyard, APP), timeout=BOUND, interval=0.02)
    return seconds_until_ok(shipyard, APP, READ, killed, BOUND)


def kill_platform(shipyard: Shipyard) -> float:
    assert shipyard.proc is not None
    old_run = descendants(shipyard.proc.pid)
    shipyard.proc.kill()
    shipyard.proc.wait()
    shipyard.wait_for(lambda: not any(pid_alive(p) for p in old_run), timeout=BOUND, interval=0.02)
    restarted = time.monotonic()
    shipyard.start()
    return seconds_until_ok(shipyard, APP, READ, restarted, BOUND)


@dataclass
class Fault:
    name: str
    inflict: Callable[[Shipyard], float]  # returns the recovery time
    web: int = 1  # web instances while it happens
    recoveries: list[float] = field(default_factory=list)
    sent: int = 0
    failed: int = 0
    writes: int = 0
    writes_failed: int = 0
    lost: int = 0


FAULTS = [
    Fault("edge (HAProxy) kill -9", kill_edge),
    Fault("database (postmaster) kill -9", kill_database),
    Fault("one of 3 instances kill -9", kill_one_of_three, web=3),
    Fault("single instance kill -9", kill_single_instance),
    Fault("shipyard up kill -9 + restart", kill_platform),
]


def measure(shipyard: Shipyard, fault: Fault, round_no: int) -> None:
    shipyard.cli("ps:scale", APP, f"web={fault.web}")
    shipyard.wait_for(lambda: len(web_pids(shipyard, APP)) == fault.web, timeout=BOUND)
    with PathLoad(shipyard, APP, READ) as load, Writer(shipyard, APP, f"{fault.name} {round_no}") as writer:
        time.sleep(1)
        fault.recoveries.append(fault.inflict(shipyard))
        time.sleep(1)
    fault.sent += load.sent
    fault.failed += len(load.failures)
    fault.writes += len(writer.acknowledged) + writer.failed
    fault.writes_failed += writer.failed
    fault.lost += writer.lost(shipyard, APP)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        shipyard = Shipyard(Path(tmp))
        shipyard.start()
        try:
            shipyard.cli("apps", "create", APP, "--postgres")
            shipyard.push(shipyard.checkout("flask-todo", APP))
            for round_no in range(args.rounds):
                for fault in FAULTS:
                    measure(shipyard, fault, round_no)
        finally:
            shipyard.kill_all()
    print(f"{'fault':<32} {'recovery':>9} {'sent':>7} {'failed':>7} {'lost rows':>10}   (writes: sent, failed)")
    for fault in FAULTS:
        recovery = statistics.median(fault.recoveries)
        print(f"{fault.name:<32} {recovery:>7.2f} s {fault.sent:>7} {fault.failed:>7} {fault.lost:>10}   "
              f"({fault.writes}, {fault.writes_failed})")
    print(f"(4 keep-alive readers on GET {READ} and one writer on POST /todos per fault, from 1 s before it to 1 s "
          f"after its recovery; over {args.rounds} round{'s' if args.rounds > 1 else ''}: the median recovery, "
          "the sum of the rest)")


if __name__ == "__main__":
    main()
