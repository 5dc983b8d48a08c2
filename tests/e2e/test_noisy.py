"""A noisy neighbour: an app flooding its output slows neither the API nor the other apps, and its log keeps
to the rate limit with a notice of what was dropped (issue 11)."""

from __future__ import annotations

import itertools
import re
import statistics
import time
from datetime import datetime

import httpx

from .harness import Shipyard

RATE = 1000  # LogLimits.lines_per_second
BURST = 5000  # LogLimits.burst


def p95(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=20)[18]


def api_latencies(shipyard: Shipyard, count: int = 200) -> list[float]:
    """`GET /apps` with the token, one request after the other on a keep-alive connection."""
    samples = []
    with httpx.Client(base_url=f"http://127.0.0.1:{shipyard.api_port}", timeout=10,
                      headers={"Authorization": f"Bearer {shipyard.token}"}) as client:
        for _ in range(count):
            started = time.perf_counter()
            response = client.get("/apps")
            samples.append(time.perf_counter() - started)
            assert response.status_code == 200, response.text
    return samples


def app_lines_per_second(log: str) -> list[int]:
    """How many of the app's own lines the log holds for each whole second it covers."""
    seconds = [datetime.fromisoformat(m.group(1)).replace(microsecond=0)
               for m in re.finditer(r"^(\S+) app\[web\.1\]: noise ", log, re.MULTILINE)]
    counts: dict[datetime, int] = {}
    for second in seconds:
        counts[second] = counts.get(second, 0) + 1
    return [counts[s] for s in sorted(counts)[1:-1]]  # the first and last seconds are partial


def test_a_flooding_app_slows_neither_the_api_nor_its_neighbours(shipyard: Shipyard) -> None:
    shipyard.cli("apps", "create", "quiet")
    shipyard.push(shipyard.checkout("flask-hello", "quiet"))
    shipyard.cli("apps", "create", "noisy")
    shipyard.push(shipyard.checkout("noisy-app", "noisy"))
    notice = re.compile(r"shipyard\[logs\]: (\d+) lines dropped: the app wrote more than 1000 lines/s")
    # The notice comes once a second among 1000 lines a second: the last 3000 lines hold one.
    shipyard.wait_for(lambda: notice.search(shipyard.cli("logs", "noisy", "-n", "3000").out), timeout=30)

    # Idle and flood back to back, in rounds, so that what else this machine runs meanwhile weighs on both
    # alike; 200 requests each.
    api_latencies(shipyard, 50)  # warm up
    idle: list[float] = []
    flood: list[float] = []
    for _ in range(5):
        assert shipyard.get("noisy", "/quiet").status_code == 200
        time.sleep(0.5)  # what the pipe holds is read
        idle += api_latencies(shipyard, 40)
        assert shipyard.get("noisy", "/loud").status_code == 200
        time.sleep(0.5)
        flood += api_latencies(shipyard, 40)
    print(f"API p95 (GET /apps): {p95(idle) * 1000:.2f} ms idle, {p95(flood) * 1000:.2f} ms while an app floods "
          f"its output (p50 {statistics.median(idle) * 1000:.2f} / {statistics.median(flood) * 1000:.2f} ms)")
    # At most twice the idle p95, with a floor of idle + 5 ms: on a 2-core machine the flooding app takes
    # a whole core (its size's cap) and the kernel's pipe copies take more, so one scheduler delay of a few
    # ms that no code of ours causes would double a ~2 ms p95 by itself. A loop blocked by log writes
    # (62 ms p50 before issue 11) still fails by far.
    assert p95(flood) <= max(2 * p95(idle), p95(idle) + 0.005), (p95(idle), p95(flood))

    # Both apps answer; the noisy one's log keeps to the rate and says how much it dropped.
    assert shipyard.get("noisy").text == "noisy-app answers\n"
    assert shipyard.get("quiet").status_code == 200
    time.sleep(3)
    log = (shipyard.data_dir / "logs" / "noisy" / "app.log").read_text(errors="replace")
    per_second = app_lines_per_second(log)
    assert per_second and max(per_second) <= RATE + BURST, per_second
    assert sum(per_second[-2:]) <= 2 * RATE + 50, per_second  # past the burst: the rate (one refill of slack)
    dropped = sum(int(n) for n in notice.findall(log))
    assert dropped > 10 * sum(per_second), (dropped, per_second)
    notices = [datetime.fromisoformat(line.split()[0]) for line in log.splitlines() if notice.search(line)]
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(notices)]
    assert gaps and min(gaps) >= 0.99, gaps  # at most one notice a second

    shipyard.cli("apps", "destroy", "noisy", "--confirm", "noisy")
    assert shipyard.get("quiet").status_code == 200
