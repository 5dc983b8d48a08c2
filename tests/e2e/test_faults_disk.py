"""A full disk never hurts the platform (issue 11): apps keep serving and never hang on their logs, a push that
cannot fit is refused before anything is built, `shipyard doctor` warns, and the platform stops cleanly.

The data directory is a 512 MB tmpfs the test mounts (root only): room for the platform, PostgreSQL's data
and one Flask app's build, then filled up with a file.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from shipyard.runtime.disk import build_estimate, disk_space, slug_size

from ..unit.tmpfs import tmpfs
from .harness import Shipyard

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")

MB = 1024 * 1024


@contextmanager
def platform_on_small_disk(root: Path, size: str = "512m") -> Iterator[Shipyard]:
    """A running platform whose data directory is a tmpfs of `size` (root only), unmounted afterwards."""
    with tmpfs(root / "data", size):
        platform = Shipyard(root)
        try:
            platform.start()
            yield platform
        finally:
            platform.kill_all()


@pytest.fixture(scope="module")
def shipyard(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shipyard]:
    with platform_on_small_disk(tmp_path_factory.mktemp("small-disk")) as platform:
        yield platform


def fill(path: Path, leave: int = 0) -> None:
    """Take the disk's free space, but `leave` bytes, with one file (as another program filling it would)."""
    with open(path, "ab", buffering=0) as f:
        block = b"\0" * MB
        try:
            while (free := disk_space(path.parent).free) > leave:
                f.write(block[:min(MB, free - leave)])
        except OSError:  # full
            pass


def app_lines(shipyard: Shipyard, app: str) -> list[str]:
    log = shipyard.data_dir / "logs" / app / "app.log"
    return [line for line in log.read_text(errors="replace").splitlines() if " app[" in line]


def serves_for(shipyard: Shipyard, app: str, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        response = shipyard.get(app)
        assert response.status_code == 200 and response.text == "noisy-app answers\n", response.text
        time.sleep(0.2)


def test_a_full_disk_drops_log_lines_refuses_pushes_and_warns_while_apps_keep_serving(shipyard: Shipyard) -> None:
    shipyard.cli("apps", "create", "steady")
    shipyard.cli("config", "set", "steady", "NOISE_RATE=20")  # a few lines a second from each worker
    work = shipyard.checkout("noisy-app", "steady")
    shipyard.push(work)
    pid = shipyard.app_info("steady")["instances"][0]["pid"]
    shipyard.wait_for(lambda: app_lines(shipyard, "steady"), timeout=10)
    filler = shipyard.data_dir / "filler"

    # Full: the app keeps serving and logging (its lines are dropped, it never waits on them).
    fill(filler)
    assert disk_space(shipyard.data_dir).free < MB
    time.sleep(1)  # what was on its way is written or dropped
    before = len(app_lines(shipyard, "steady"))
    serves_for(shipyard, "steady", 5)
    assert len(app_lines(shipyard, "steady")) == before  # nothing written: dropped
    info = shipyard.app_info("steady")
    assert info["state"] == "up" and info["instances"][0]["pid"] == pid  # neither hung nor restarted

    doctor = shipyard.cli("doctor", check=False)
    assert doctor.code == 1, doctor.text
    assert re.search(r"warning\s+disk: the data directory's disk is almost full: \S+ \w+ free of "
                     r"512\.0 MB \(0\.\d %\)", doctor.out), doctor.out
    assert "apps' log lines are dropped" in doctor.out

    # A little room again: the app's lines come back, after the count of those dropped.
    slug = next(p for p in (shipyard.data_dir / "slugs" / "steady").iterdir() if p.name != "venvs")
    needed = build_estimate(0, slug_size(slug))
    leave = min(4 * MB, needed // 2)
    os.truncate(filler, os.path.getsize(filler) - leave)
    shipyard.wait_for(lambda: len(app_lines(shipyard, "steady")) > before + 5, timeout=10)
    log = (shipyard.data_dir / "logs" / "steady" / "app.log").read_text(errors="replace")
    dropped = re.findall(r"shipyard\[logs\]: (\d+) log line\(s\) were dropped: the disk was full", log)
    assert dropped and int(dropped[-1]) >= 5 * 20, log[-2000:]  # 5 s of 2 workers' 20 lines/s, at least

    # A push that cannot fit is refused before building, saying how much is free; v1 keeps serving.
    (work / "app.py").write_text((work / "app.py").read_text().replace("noisy-app answers", "v2 answers"))
    shipyard.commit(work, "v2")
    pushed = shipyard.push(work, check=False)
    assert pushed.code != 0, pushed.text
    assert re.search(r"Not enough disk space to build this push: [\d.]+ \w+ free of 512\.0 MB", pushed.text), \
        pushed.text
    assert "the running release keeps serving" in pushed.text and "bigger disk" in pushed.text
    releases = shipyard.api("GET", "/apps/steady/releases").json()
    assert [r["version"] for r in releases] == [1], releases
    serves_for(shipyard, "steady", 1)
    deploy = shipyard.api("GET", "/apps/steady/deploys").json()[0]
    assert deploy["status"] == "failed" and deploy["steps"][-1]["name"] == "pre-flight", deploy
    assert not list((shipyard.data_dir / "tmp").glob("src-*"))  # the pushed source was cleaned up


def test_the_platform_stops_cleanly_on_a_full_disk(shipyard: Shipyard) -> None:
    fill(shipyard.data_dir / "filler")
    assert disk_space(shipyard.data_dir).free < MB
    serves_for(shipyard, "steady", 1)
    before = len(shipyard.up_log())
    assert shipyard.stop() == 0
    said = shipyard.up_log()[before:]
    assert "Traceback" not in said and "exception" not in said.lower(), said
    # Whatever could not be done is one warning line, not a traceback (often nothing fails at all).
    assert all(line.startswith(("Stopping", "Warning: ", "  ")) or not line.strip()
               for line in said.splitlines()), said


def test_up_warns_at_start_when_the_disk_is_low(shipyard: Shipyard) -> None:
    filler = shipyard.data_dir / "filler"
    filler.unlink()
    fill(filler, leave=20 * MB)  # under 5 % of 512 MB, with room to start
    before = len(shipyard.up_log())
    shipyard.start()
    said = shipyard.up_log()[before:]
    assert re.search(r"Warning: the data directory's disk is almost full: 20\.\d MB free of 512\.0 MB", said), said
    shipyard.wait_for(lambda: shipyard.get("steady").status_code == 200, timeout=60)  # restored at v1
    assert shipyard.stop() == 0
