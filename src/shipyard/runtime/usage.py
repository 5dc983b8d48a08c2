"""What an instance uses: its CPU time so far and its memory now, for the metrics history's charts.

From the instance's cgroup when it has one: it holds everything the instance forked (daemons included), and its
memory figure is what the instance's limit counts. Otherwise from its process tree (psutil).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import psutil

from shipyard.runtime.cgroups import Cgroup, children


@dataclass(frozen=True)
class Usage:
    cpu_seconds: float | None  # CPU time of everything in the instance since its process started; None: unknown
    memory_bytes: int | None


def cpu_stat_seconds(text: str) -> float | None:
    """The `usage_usec N` line of a v2 cpu.stat, in seconds."""
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        if key == "usage_usec" and value.strip().isdigit():
            return int(value) / 1_000_000
    return None


def _read_int(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def cgroup_usage(cgroup: Cgroup) -> Usage:
    """What the cgroup's own files say (None where a controller does not tell: v1 without cpuacct beside cpu)."""
    if cgroup.version == 2:
        folder = cgroup.folders[""]
        try:
            cpu = cpu_stat_seconds((folder / "cpu.stat").read_text())
        except OSError:
            cpu = None
        return Usage(cpu, _read_int(folder / "memory.current"))
    cpu_folder, memory_folder = cgroup.folders.get("cpu"), cgroup.folders.get("memory")
    # v1 counts CPU time in cpuacct, which most machines mount together with cpu ("cpu,cpuacct").
    nanoseconds = _read_int(cpu_folder / "cpuacct.usage") if cpu_folder else None
    return Usage(None if nanoseconds is None else nanoseconds / 1e9,
                 _read_int(memory_folder / "memory.usage_in_bytes") if memory_folder else None)


def process_tree(pid: int) -> list[int]:
    """pid and its descendants, from the kernel's children lists (no scan of all of /proc per instance)."""
    found, pending = [], [pid]
    while pending:
        current = pending.pop()
        found.append(current)
        pending += children(current)
    return found


def processes_usage(pids: list[int]) -> Usage:
    """CPU time and resident memory summed over processes. CPU time includes what their exited (reaped) children
    used, so a gunicorn worker that is replaced does not take its CPU time with it."""
    cpu, memory, seen = 0.0, 0, False
    for pid in pids:
        try:
            process = psutil.Process(pid)
            with process.oneshot():
                times, rss = process.cpu_times(), process.memory_info().rss
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        cpu += times.user + times.system + times.children_user + times.children_system
        memory += rss
        seen = True
    return Usage(cpu, memory) if seen else Usage(None, None)


def instance_usage(cgroup: Cgroup | None, pid: int | None) -> Usage:
    """An instance's usage: its cgroup's figures, with its processes' for what the cgroup does not tell."""
    usage = cgroup_usage(cgroup) if cgroup is not None else Usage(None, None)
    if usage.cpu_seconds is not None and usage.memory_bytes is not None:
        return usage
    pids = cgroup.pids() if cgroup is not None else []
    if not pids and pid is not None:
        pids = process_tree(pid)
    measured = processes_usage(pids)
    return Usage(usage.cpu_seconds if usage.cpu_seconds is not None else measured.cpu_seconds,
                 usage.memory_bytes if usage.memory_bytes is not None else measured.memory_bytes)
