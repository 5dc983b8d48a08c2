"""Elastic apps (issue 15), end to end: three instances share requests by how many each has in flight (a slow
instance gets fewer); a bounded loopback burst makes the autoscaler panic and scale up within the panic window,
never past --max, and back down after; `shipyard apps info` shows its decisions with their inputs."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator

import httpx
import pytest

from .harness import Shipyard

pytestmark = pytest.mark.e2e
PANIC_WINDOW = 3
STABLE_WINDOW = 12
ZERO_AFTER = 5
WAKE_TIMEOUT = 6


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shipyard]:
    shipyard = Shipyard(tmp_path_factory.mktemp("autoscale"))
    # Shorter windows than the KPA's 60 s / 6 s so the test takes a minute, not several.
    shipyard.env.update(SHIPYARD_AUTOSCALE_STABLE_WINDOW=str(STABLE_WINDOW),
                        SHIPYARD_AUTOSCALE_PANIC_WINDOW=str(PANIC_WINDOW), SHIPYARD_AUTOSCALE_SCALE_DOWN_DELAY="4",
                        SHIPYARD_SCALE_TO_ZERO_AFTER=str(ZERO_AFTER), SHIPYARD_WAKE_TIMEOUT=str(WAKE_TIMEOUT))
    shipyard.start()
    try:
        yield shipyard
    finally:
        shipyard.kill_all()


def load(platform: Shipyard, app: str, path: str, clients: int, seconds: float) -> Counter[str]:
    """`clients` keep-alive clients sending requests one after another for `seconds`; answers by body."""
    seen: Counter[str] = Counter()
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def client() -> None:
        with httpx.Client(base_url=f"http://127.0.0.1:{platform.edge_port}", timeout=30,
                          headers={"Host": f"{app}.localhost:{platform.edge_port}"}) as http:
            while time.monotonic() < deadline:
                answer = http.get(path)
                with lock:
                    seen[answer.text if answer.status_code == 200 else str(answer.status_code)] += 1

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return seen


def web_count(platform: Shipyard, app: str) -> int:
    return sum(1 for i in platform.app_info(app)["instances"] if i["name"].startswith("web.") and i["state"] == "up")


def test_a_slow_instance_gets_fewer_requests(platform: Shipyard) -> None:
    platform.cli("apps", "create", "spread")
    platform.push(platform.checkout("slow-instance", "spread"))
    platform.cli("scale", "spread", "web=3")
    assert web_count(platform, "spread") == 3
    seen = load(platform, "spread", "/work?ms=20&slow=web.1", clients=6, seconds=6)
    fast = min(seen["web.2"], seen["web.3"])
    assert set(seen) == {"web.1", "web.2", "web.3"}, seen  # every instance serves, no errors
    # web.1 takes 200 ms a request, the others 20: by in-flight count it gets a small share, not a third.
    assert seen["web.1"] * 4 < fast, seen


def test_a_burst_scales_up_within_the_panic_window_and_back_down(platform: Shipyard) -> None:
    platform.cli("apps", "create", "bursty")
    platform.push(platform.checkout("slow-instance", "bursty"))
    out = platform.cli("scale", "bursty", "web", "--min", "1", "--max", "3", "--concurrency", "2").out
    assert "between 1 and 3 instances" in out
    assert platform.app_info("bursty")["autoscale"] == {"web": {"min": 1, "max": 3, "concurrency": 2.0}}

    counts: list[tuple[float, int]] = []
    started = time.monotonic()
    watching = True

    def watch() -> None:
        while watching:
            counts.append((time.monotonic() - started, web_count(platform, "bursty")))
            time.sleep(0.25)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        # 10 clients on a 300 ms page: ~10 in flight against a target of 2 per instance → 5 wanted, capped at 3.
        seen = load(platform, "bursty", "/work?ms=300", clients=10, seconds=PANIC_WINDOW + 5)
        assert all(key.startswith("web.") for key in seen), seen  # no failed request while scaling
        reached = next((t for t, n in counts if n == 3), None)
        assert reached is not None and reached <= PANIC_WINDOW + 3, counts  # within the panic window (+ boot)
        assert max(n for _, n in counts) == 3  # never past --max
        info = platform.cli("apps", "info", "bursty").out
        assert "Autoscale:    web 1–3 instances, 2 requests in flight per instance" in info
        assert "PANIC" in info and "1 → " in info and "capped at --max 3" in info, info
        # Load gone: back to --min once the stable window has no load and the scale-down delay passed.
        assert platform.wait_for(lambda: web_count(platform, "bursty") == 1, timeout=STABLE_WINDOW * 4 + 20)
    finally:
        watching = False
        watcher.join()

    platform.cli("scale", "bursty", "web=2")  # a fixed count turns autoscaling off
    assert platform.app_info("bursty")["autoscale"] == {}
    assert web_count(platform, "bursty") == 2


def test_bad_bounds_are_refused_with_the_fix(platform: Shipyard) -> None:
    bad = platform.cli("scale", "bursty", "web", "--min", "4", "--max", "2", check=False)
    assert bad.code != 0 and "0 ≤ min ≤ max ≤ 20" in bad.text
    worker = platform.cli("scale", "bursty", "worker", "--min", "1", "--max", "2", check=False)
    assert worker.code != 0 and "Only web processes autoscale" in worker.text


def test_an_idle_app_goes_to_zero_and_the_next_request_wakes_it(platform: Shipyard) -> None:
    platform.cli("apps", "create", "sleepy")
    platform.push(platform.checkout("slow-instance", "sleepy"))
    platform.cli("scale", "sleepy", "web", "--min", "0", "--max", "2", "--concurrency", "5")
    assert platform.wait_for(lambda: platform.app_info("sleepy")["formation"]["web"] == 0,
                             timeout=ZERO_AFTER + 15)
    assert web_count(platform, "sleepy") == 0
    assert "web: at zero" in platform.cli("ps", "sleepy").out
    info = platform.cli("apps", "info", "sleepy").out
    assert "sleepy  release v1  zero" in info and "the next request starts it" in info, info

    # The request is held while an instance starts, then answered by it: the right body, not an error page.
    started = time.monotonic()
    answer = platform.get("sleepy")
    woke_in = time.monotonic() - started
    assert answer.status_code == 200 and answer.text.startswith("slow-instance on web."), answer.text
    assert woke_in < WAKE_TIMEOUT, woke_in
    assert web_count(platform, "sleepy") == 1
    assert platform.get("sleepy", "/work?ms=1").status_code == 200  # now straight to the instance
    assert "starting web (scaled to zero)" in platform.cli("logs", "sleepy").out

    # Held past the wake timeout (an app that takes longer to start): a 503 page saying why, never a hang.
    platform.cli("config", "set", "sleepy", f"BOOT_DELAY={WAKE_TIMEOUT + 4}")
    assert platform.wait_for(lambda: platform.app_info("sleepy")["formation"]["web"] == 0,
                             timeout=ZERO_AFTER + 30)
    started = time.monotonic()
    answers: list[httpx.Response] = []
    first = threading.Thread(target=lambda: answers.append(platform.get("sleepy")))
    first.start()
    time.sleep(1)
    assert "web.1: starting" in platform.cli("ps", "sleepy").out  # booting, not yet routed
    platform.cli("apps", "create", "neighbour")  # the routes change while sleepy wakes: it must stay held
    second = platform.get("sleepy")
    assert "has no running instance" not in second.text, second.text
    assert second.status_code in (200, 503) and ("did not start within" in second.text or second.status_code == 200)
    first.join()
    held = answers[0]
    assert held.status_code == 503, held.text
    assert "scaled to zero and did not start within" in held.text and "shipyard logs sleepy" in held.text
    assert time.monotonic() - started < WAKE_TIMEOUT + 3
    # The start goes on: once up, the app answers.
    assert platform.wait_for(lambda: platform.get("sleepy").status_code == 200, timeout=30)
