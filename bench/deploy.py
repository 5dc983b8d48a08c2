"""Push-to-live seconds: a first deploy and a code-only redeploy of tests/apps/flask-hello.

Starts a real `shipyard up` in a temporary data directory, times `git push` (which returns once the
release is live) and confirms through the edge. The uv cache is cold for the first deploy of the
first round only. Usage: python bench/deploy.py [--rounds N]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.e2e.harness import Shipyard  # noqa: E402


def timed_push(shipyard: Shipyard, work: Path, expect: str, app: str) -> float:
    started = time.perf_counter()
    shipyard.push(work)
    response = shipyard.get(app)
    elapsed = time.perf_counter() - started
    assert response.text == expect, response.text
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    firsts, redeploys = [], []
    with tempfile.TemporaryDirectory() as tmp:
        shipyard = Shipyard(Path(tmp))
        shipyard.start()
        try:
            for n in range(args.rounds):
                app = f"bench{n}"
                shipyard.cli("apps", "create", app)
                work = shipyard.checkout("flask-hello", app)
                firsts.append(timed_push(shipyard, work, "Hello from flask-hello v1\n", app))
                source = (work / "app.py").read_text()
                (work / "app.py").write_text(source.replace('VERSION = "1"', 'VERSION = "2"'))
                shipyard.commit(work, "code change")
                redeploys.append(timed_push(shipyard, work, "Hello from flask-hello v2\n", app))
        finally:
            shipyard.kill_all()
    print(f"first deploy (cold uv cache):  {firsts[0]:.2f} s")
    if len(firsts) > 1:
        print(f"first deploy (warm uv cache):  median {statistics.median(firsts[1:]):.2f} s over {len(firsts) - 1}")
    print(f"code-only redeploy:            median {statistics.median(redeploys):.2f} s over {len(redeploys)}"
          f" (min {min(redeploys):.2f}, max {max(redeploys):.2f})")


if __name__ == "__main__":
    main()
