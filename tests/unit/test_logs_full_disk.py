"""A full disk never stops an app's log writer: lines are dropped, counted, and the count is logged later.

Uses a real full file system: a 64 KiB tmpfs the test mounts (root only)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from shipyard.runtime.logs import AppLog

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")


def test_lines_are_dropped_and_counted_while_the_disk_is_full(tmp_path: Path) -> None:
    disk = tmp_path / "disk"
    disk.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(disk)], check=True)
    try:
        filler = disk / "filler"
        log = AppLog(disk / "app" / "app.log", max_bytes=1024 * 1024)
        with open(filler, "wb", buffering=0) as f:  # fill what is left, as another writer would
            try:
                while True:
                    f.write(b"x" * 4096)
            except OSError:
                pass
        for n in range(50):
            log.write("app[web.1]", f"line {n} " + "y" * 200)  # never raises
        assert log.dropped >= 40
        filler.unlink()  # space again
        log.write("app[web.1]", "after")
        text = (disk / "app" / "app.log").read_text()
        assert "log line(s) were dropped: the disk was full" in text and text.rstrip().endswith("after")
        assert log.dropped == 0
    finally:
        subprocess.run(["umount", str(disk)], check=True)
