"""What `shipyard doctor` says about waking from zero faster: CRIU (optional, ≥ 4.1) and cgroup moves."""

from __future__ import annotations

from pathlib import Path

from shipyard.runtime.wake_speed import ExpeditedRcu, cgroup_moves, criu_support, criu_version


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


def test_cgroup_moves_are_quick_only_with_expedited_grace_periods() -> None:
    assert cgroup_moves("1\n").available
    slow = cgroup_moves("0\n")
    assert not slow.available and "rcu_expedited" in slow.detail
    assert not cgroup_moves(None).available


def test_expedited_rcu_is_set_while_asked_for_and_put_back(tmp_path: Path) -> None:
    knob = tmp_path / "rcu_expedited"
    knob.write_text("0\n")
    rcu = ExpeditedRcu(knob)
    assert rcu.enable() and knob.read_text() == "1"
    rcu.restore()
    assert knob.read_text() == "0"
    rcu.restore()  # twice: nothing to put back
    assert not ExpeditedRcu(tmp_path / "missing").enable()
    assert "set by Shipyard" in cgroup_moves("1\n", by_shipyard=True).detail
