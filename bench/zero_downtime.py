"""Requests during deploys vs a steady period, through the real edge, in one run.

Four keep-alive client threads send requests on loopback (bounded by time) to flask-hello while Shipyard
does, in order: 10 code-only redeploys, a config change, a scale from 1 to 3 web instances and back, and
a rollback. The same load runs for a steady period first as the baseline. A failure is an error status
(≥ 500) or no response at all.
Usage: python bench/zero_downtime.py
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.e2e.harness import Shipyard  # noqa: E402
from tests.e2e.load import Load  # noqa: E402


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        shipyard = Shipyard(Path(tmp))
        shipyard.start()
        try:
            shipyard.cli("apps", "create", "zd")
            work = shipyard.checkout("flask-hello", "zd")
            shipyard.push(work)
            with Load(shipyard, "zd") as steady:
                time.sleep(10)
            with Load(shipyard, "zd") as deploying:
                for n in range(10):
                    (work / "app.py").write_text((work / "app.py").read_text() + f"\n# redeploy {n}\n")
                    shipyard.commit(work, f"redeploy {n}")
                    shipyard.push(work)
                shipyard.cli("config", "set", "zd", "GREETING=hi")
                shipyard.cli("ps:scale", "zd", "web=3")
                shipyard.cli("ps:scale", "zd", "web=1")
                shipyard.cli("rollback", "zd", "v2")
                time.sleep(1)
        finally:
            shipyard.kill_all()
    print(steady.report("steady"))
    print(deploying.report("deploys"))
    print("(deploys = 10 redeploys, a config change, scale 1→3→1, a rollback)")
    print(f"p99 during deploys / steady: {deploying.p99_ms() / steady.p99_ms():.2f}x")
    if deploying.failures:
        print("failures:", *sorted(set(deploying.failures))[:10], sep="\n  ")


if __name__ == "__main__":
    main()
