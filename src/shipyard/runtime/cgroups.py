"""Resource limits per app process through cgroups: v1 (memory, cpu, pids, freezer) or v2.

Every instance, release command and one-off gets a cgroup of its own below the platform's own cgroup,
with its size's limits. The platform joins the child to it before exec (so nothing it forks escapes),
reads its OOM-kill counter, and kills everything in it when the process stops.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from shipyard.runtime.limits import Size

ROOT = Path("/sys/fs/cgroup")
V1_CONTROLLERS = ("memory", "cpu", "pids", "freezer")
V2_CONTROLLERS = ("memory", "cpu", "pids")
CFS_PERIOD = 100_000


def limit_values(version: int, size: Size, has_swap_limit: bool = True, cpu_boost: bool = False) -> dict[str, str]:
    """controller/file → value for a size (v1 keys name their controller; v2 files live in one folder).
    `cpu_boost`: no CPU quota (yet); the weight, which shares a busy machine fairly, stays the size's."""
    memory = str(size.memory_bytes)
    quota = cpu_quota(version, None if cpu_boost else size.cpus)
    if version == 1:
        values = {"memory/memory.limit_in_bytes": memory}
        if has_swap_limit:  # memory + swap: without it, the limit pushes the app into swap instead
            values["memory/memory.memsw.limit_in_bytes"] = memory
        values |= {"cpu/cpu.cfs_period_us": str(CFS_PERIOD), "cpu/cpu.cfs_quota_us": quota,
                   "cpu/cpu.shares": str(int(1024 * size.cpus)), "pids/pids.max": str(size.pids)}
        return values
    # memory.oom.group: an OOM kills the whole instance, not one worker gunicorn would quietly replace.
    return {"memory.max": memory, "memory.swap.max": "0", "memory.oom.group": "1",
            "cpu.max": quota, "cpu.weight": str(max(1, int(100 * size.cpus))), "pids.max": str(size.pids)}


def cpu_quota(version: int, cpus: float | None) -> str:
    """The value of cpu.cfs_quota_us (v1) or cpu.max (v2) for `cpus` CPUs; None: no quota."""
    if version == 1:
        return "-1" if cpus is None else str(int(cpus * CFS_PERIOD))
    return f"{'max' if cpus is None else int(cpus * CFS_PERIOD)} {CFS_PERIOD}"


def parse_own_cgroups(text: str) -> dict[str, str]:
    """/proc/self/cgroup → controller → path ("" is the v2 unified hierarchy)."""
    paths: dict[str, str] = {}
    for line in text.splitlines():
        _, controllers, path = line.split(":", 2)
        for controller in controllers.split(",") if controllers else [""]:
            paths[controller] = path
    return paths


def oom_kills(text: str) -> int:
    """The `oom_kill N` line of memory.oom_control (v1) or memory.events (v2)."""
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        if key == "oom_kill":
            return int(value)
    return 0


@dataclass(frozen=True)
class Cgroup:
    """One process's cgroup: a folder per v1 controller, or one v2 folder."""

    version: int
    folders: Mapping[str, Path]  # controller ("" for v2) → folder

    def join(self) -> None:
        """preexec_fn: move the calling (child) process in, so everything it forks is counted and limited."""
        self._move(os.getpid())

    def _move(self, pid: int) -> None:
        for folder in self.folders.values():
            with open(folder / "cgroup.procs", "w") as f:
                f.write(str(pid))

    def adopt(self, pid: int) -> None:
        """Move a process and everything it has forked so far in (from the platform, while bubblewrap waits
        on its block fd, so nothing can fork behind our back: what forks after a move is born inside)."""
        moved: set[int] = set()
        pending = [pid]
        while pending:
            current = pending.pop()
            if current in moved:
                continue
            try:
                self._move(current)
            except ProcessLookupError:  # it exited meanwhile: nothing left to confine
                pass
            moved.add(current)
            pending += children(current)

    def limit_cpu(self, cpus: float) -> bool:
        """Apply a CPU quota (after a boot's boost); False if the cgroup is gone."""
        if self.version == 1:
            return _write(self.folders["cpu"] / "cpu.cfs_quota_us", cpu_quota(1, cpus))
        return _write(self.folders[""] / "cpu.max", cpu_quota(2, cpus))

    def oom_kills(self) -> int:
        name = "memory.oom_control" if self.version == 1 else "memory.events"
        folder = self.folders.get("memory" if self.version == 1 else "")
        try:
            return oom_kills((folder / name).read_text()) if folder else 0
        except OSError:
            return 0

    def pids(self) -> list[int]:
        folder = self.folders.get("pids" if self.version == 1 else "")
        try:
            return [int(p) for p in (folder / "cgroup.procs").read_text().split()] if folder else []
        except OSError:
            return []

    def freeze(self) -> bool:
        """Stop every process inside at once, invisibly to them (no signal): no CPU, memory kept. False when
        this machine's cgroups have no freezer."""
        if self.version == 2:
            return _write(self.folders[""] / "cgroup.freeze", "1")
        freezer = self.folders.get("freezer")
        return freezer is not None and _write(freezer / "freezer.state", "FROZEN")

    def thaw(self) -> bool:
        if self.version == 2:
            return _write(self.folders[""] / "cgroup.freeze", "0")
        freezer = self.folders.get("freezer")
        return freezer is not None and _write(freezer / "freezer.state", "THAWED")

    def kill(self) -> None:
        """SIGKILL everything inside, also what daemonized itself out of the process group."""
        if self.version == 2:
            try:
                (self.folders[""] / "cgroup.kill").write_text("1")
                return
            except OSError:
                pass
        freezer = self.folders.get("freezer")
        # Frozen first, so nothing can fork between reading the list and killing it.
        if freezer:
            _write(freezer / "freezer.state", "FROZEN")
        for _ in range(5):
            pids = self.pids()
            if not pids:
                break
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            if freezer:
                _write(freezer / "freezer.state", "THAWED")  # killed tasks die only once thawed
            time.sleep(0.01)
        if freezer:
            _write(freezer / "freezer.state", "THAWED")

    def remove(self) -> None:
        for folder in self.folders.values():
            for _ in range(50):
                try:
                    folder.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:  # still has (dying) processes
                    time.sleep(0.02)


def children(pid: int) -> list[int]:
    """A process's children, from the kernel's own list rather than psutil's scan of all of /proc (this runs
    while a sandbox waits to start, and for every frozen instance's thaw)."""
    found: list[int] = []
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            found += [int(c) for c in (task / "children").read_text().split()]
    except OSError:  # it exited meanwhile
        pass
    return found


def _write(path: Path, value: str) -> bool:
    try:
        path.write_text(value)
        return True
    except OSError:
        return False


class CgroupTree:
    """Where the platform makes its processes' cgroups: `<its own cgroup>/<name>/…` in each hierarchy."""

    def __init__(self, version: int, bases: Mapping[str, Path], swap_limit: bool) -> None:
        self.version = version
        self.bases = dict(bases)
        self._swap_limit = swap_limit

    @classmethod
    def detect(cls, name: str) -> tuple[CgroupTree | None, str]:
        """The tree for this machine, or None and why limits cannot be set."""
        if os.geteuid() != 0:
            return None, "the platform does not run as root"
        own = parse_own_cgroups(Path("/proc/self/cgroup").read_text())
        if (ROOT / "cgroup.controllers").exists():
            return cls._detect_v2(name, own.get("", "/"))
        missing = [c for c in V1_CONTROLLERS if not (ROOT / c).is_dir() or c not in own]
        if missing:
            return None, f"cgroup v1 controllers missing: {', '.join(missing)}"
        bases = {c: ROOT / c / own[c].lstrip("/") / name for c in V1_CONTROLLERS}
        try:
            for base in bases.values():
                base.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            return None, f"cannot create cgroups ({exc.strerror})"
        swap = (bases["memory"] / "memory.memsw.limit_in_bytes").exists()
        return cls(1, bases, swap), "cgroup v1 (memory, cpu, pids, freezer)"

    @classmethod
    def _detect_v2(cls, name: str, own: str) -> tuple[CgroupTree | None, str]:
        here = ROOT / own.lstrip("/")
        available = set((here / "cgroup.controllers").read_text().split())
        missing = [c for c in V2_CONTROLLERS if c not in available]
        if missing:
            return None, f"cgroup v2 controllers not delegated here: {', '.join(missing)}"
        try:
            # "No internal processes": the platform moves into a leaf of its own before its cgroup
            # can hand controllers down to the apps' cgroups.
            leaf = here / "platform"
            leaf.mkdir(exist_ok=True)
            for pid in (here / "cgroup.procs").read_text().split():
                _write(leaf / "cgroup.procs", pid)
            enable = " ".join(f"+{c}" for c in V2_CONTROLLERS)
            (here / "cgroup.subtree_control").write_text(enable)
            base = here / name
            base.mkdir(exist_ok=True)
            (base / "cgroup.subtree_control").write_text(enable)
        except OSError as exc:
            return None, f"cannot delegate cgroup v2 controllers ({exc.strerror})"
        return cls(2, {"": base}, True), "cgroup v2 (memory, cpu, pids)"

    def create(self, key: str, size: Size, cpu_boost: bool = False) -> Cgroup:
        """A fresh cgroup with the size's limits (an old one of the same key is emptied first); `cpu_boost`:
        without its CPU quota for now (see limit_values)."""
        folders = {c: base / key for c, base in self.bases.items()}
        cgroup = Cgroup(self.version, folders)
        if any(f.exists() for f in folders.values()):
            cgroup.kill()
            cgroup.remove()
        for folder in folders.values():
            folder.mkdir(parents=True, exist_ok=True)
        for name, value in limit_values(self.version, size, self._swap_limit, cpu_boost).items():
            if self.version == 1:
                controller, _, filename = name.partition("/")
                _write(folders[controller] / filename, value)
            else:
                _write(folders[""] / name, value)
        return cgroup

    def prime(self) -> None:
        """Make the next moves into cgroups quick; run it just before spawning a process to be moved in.

        Every move takes the kernel's cgroup-wide threadgroup lock for writing, and the first writer after a
        quiet moment waits out an RCU grace period (10-20 ms here) before the lock is in its slow mode; moves
        within the next grace period then take microseconds. Re-writing the platform's own pid into the
        cgroup it is in moves nothing but pays that wait, in a thread, while the child is being forked.
        """
        if self.version == 1:
            own = self.bases["pids"].parent
        else:
            own = self.bases[""].parent / "platform"
        _write(own / "cgroup.procs", str(os.getpid()))

    def close(self) -> None:
        """At the platform's stop: nothing of ours stays in the host's cgroup tree."""
        self.sweep()
        for base in self.bases.values():
            try:
                base.rmdir()
            except OSError:
                pass

    def sweep(self) -> None:
        """Remove cgroups left by a platform that was killed (their processes die with it)."""
        for base in self.bases.values():
            for folder in sorted(base.glob("*"), reverse=True):
                if folder.is_dir():
                    leftover = Cgroup(self.version, {c: b / folder.name for c, b in self.bases.items()})
                    leftover.kill()
                    leftover.remove()
