"""What an instance uses, for the metrics history's CPU and memory charts: from its cgroup (v2, v1 with or without
cpuacct beside cpu) or from its processes."""

from __future__ import annotations

import os
from pathlib import Path

from shipyard.runtime.cgroups import Cgroup
from shipyard.runtime.usage import Usage, cgroup_usage, cpu_stat_seconds, instance_usage


def test_usage_from_a_cgroup_v2_folder(tmp_path: Path) -> None:
    (tmp_path / "cpu.stat").write_text("usage_usec 2500000\nuser_usec 2000000\nsystem_usec 500000\n")
    (tmp_path / "memory.current").write_text("52428800\n")
    assert cgroup_usage(Cgroup(2, {"": tmp_path})) == Usage(2.5, 52428800)
    assert cpu_stat_seconds("nr_periods 0\n") is None


def test_usage_from_cgroup_v1_and_from_the_processes_where_it_does_not_tell(tmp_path: Path) -> None:
    folders = {c: tmp_path / c for c in ("memory", "cpu", "pids", "freezer")}
    for folder in folders.values():
        folder.mkdir()
    (folders["memory"] / "memory.usage_in_bytes").write_text("1048576\n")
    (folders["cpu"] / "cpuacct.usage").write_text("3000000000\n")
    assert cgroup_usage(Cgroup(1, folders)) == Usage(3.0, 1048576)
    # cpu without cpuacct beside it (mounted apart): CPU time from the cgroup's processes, here this one.
    (folders["cpu"] / "cpuacct.usage").unlink()
    (folders["pids"] / "cgroup.procs").write_text(f"{os.getpid()}\n")
    usage = instance_usage(Cgroup(1, folders), None)
    assert usage.memory_bytes == 1048576 and usage.cpu_seconds is not None and usage.cpu_seconds > 0


def test_usage_of_a_process_tree_without_cgroups() -> None:
    usage = instance_usage(None, os.getpid())
    assert usage.cpu_seconds is not None and usage.cpu_seconds > 0
    assert usage.memory_bytes is not None and usage.memory_bytes > 10 * 2**20
    assert instance_usage(None, 2**22 + 12345) == Usage(None, None)  # no such process
