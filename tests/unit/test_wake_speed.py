"""What `shipyard doctor` says about waking from zero faster: CRIU (optional, ≥ 4.1) and cgroup moves."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from shipyard.runtime.wake_speed import (cgroup_moves, criu_support, criu_version, favor_cgroup_moves,
                                         favored_in, read_mountinfo)


def test_criu_version_is_read_from_its_version_output() -> None:
    assert criu_version("Version: 3.17.1\n") == (3, 17)
    assert criu_version("Version: 4.1\nGitID: v4.1\n") == (4, 1)
    assert criu_version("criu: command not understood") is None


def test_no_criu_or_an_old_one_means_apps_boot_and_says_what_would_help() -> None:
    missing = criu_support(None, "", None)
    assert not missing.available and "not installed" in missing.detail and "≥ 4.1" in missing.detail
    old = criu_support("/usr/sbin/criu", "Version: 3.17.1\n", None)
    assert not old.available and "CRIU 3.17" in old.detail and "too old" in old.detail


def test_a_recent_criu_must_pass_its_check() -> None:
    failing = criu_support("/usr/sbin/criu", "Version: 4.1\n", (1, "Looks bad\nError: no pidfd_open\n"))
    assert not failing.available and "Error: no pidfd_open" in failing.detail
    passing = criu_support("/usr/sbin/criu", "Version: 4.1\n", (0, "Looks good.\n"))
    assert passing.available and "passes `criu check`" in passing.detail


MOUNTINFO = """\
35 24 0:30 / /sys/fs/cgroup/cpu rw,nosuid - cgroup cgroup rw,cpu
36 24 0:31 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw,nsdelegate
"""


def test_cgroup_moves_are_quick_only_with_a_hierarchy_favoring_them() -> None:
    assert not favored_in(MOUNTINFO)
    assert favored_in(MOUNTINFO + "90 24 0:50 / /data/cgroup-moves rw - cgroup cgroup rw,favordynmods,name=x\n")
    assert favored_in("91 24 0:51 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw,nsdelegate,favordynmods\n")
    assert not favored_in("92 24 0:52 / /mnt rw - tmpfs favordynmods rw\n")  # not a cgroup: its source
    assert cgroup_moves(True).available
    refused = cgroup_moves(False, "Operation not permitted")
    assert not refused.available and "grace period" in refused.detail and "not permitted" in refused.detail
    assert "SHIPYARD_FAVOR_CGROUP_MOVES=0" in cgroup_moves(False, opted_out=True).detail


def test_the_favoring_hierarchy_is_mounted_once(tmp_path: Path) -> None:
    """A real mount (as root, which the platform is), made again by no later start."""
    if os.geteuid() != 0:
        pytest.skip("mounting a cgroup hierarchy needs root")
    point = tmp_path / "cgroup-moves"
    assert favor_cgroup_moves(point) is None
    try:
        assert os.path.ismount(point) and favored_in(read_mountinfo())
        mounts = read_mountinfo().count(str(point))
        assert favor_cgroup_moves(point) is None  # the next start (or one after a kill -9)
        assert read_mountinfo().count(str(point)) == mounts
    finally:
        subprocess.run(["umount", str(point)], check=True)
    (tmp_path / "file").write_text("")
    assert favor_cgroup_moves(tmp_path / "file" / "below") == "Not a directory"
