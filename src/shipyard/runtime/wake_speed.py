"""Waking from zero without booting: what this machine offers, detected once at start, shown by `shipyard doctor`.

CRIU ≥ 4.1 can restore a dumped, ready instance in 50-150 ms where booting takes longer; it is optional and
never required (Debian 12's criu 3.17 fails on kernels ≥ 6.13). On cgroup v1 and v2 alike, moving a new
instance into its cgroup waits for an RCU grace period unless a hierarchy is mounted with `favordynmods`,
which Shipyard does when it starts (favor_cgroup_moves) unless told not to.
"""

from __future__ import annotations

import ctypes
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

MIN_CRIU = (4, 1)
CHECK_TIMEOUT = 20.0


@dataclass(frozen=True)
class WakeSupport:
    name: str
    available: bool
    detail: str


def criu_version(text: str) -> tuple[int, int] | None:
    """(major, minor) from `criu --version` ("Version: 3.17.1")."""
    match = re.search(r"Version:\s*(\d+)\.(\d+)", text)
    return (int(match[1]), int(match[2])) if match else None


def criu_support(path: str | None, version_text: str, check: tuple[int, str] | None) -> WakeSupport:
    """The verdict on CRIU from what was found: its path, `criu --version`'s output and `criu check`'s exit code
    and output (None: not run, as for a version too old)."""
    if path is None:
        return WakeSupport("snapshots", False, "CRIU is not installed: an app at zero boots when a request wakes it "
                           f"(CRIU ≥ {MIN_CRIU[0]}.{MIN_CRIU[1]} could restore a ready instance instead)")
    version = criu_version(version_text)
    shown = f"{version[0]}.{version[1]}" if version else "of unknown version"
    if version is None or version < MIN_CRIU:
        return WakeSupport("snapshots", False, f"CRIU {shown} at {path} is too old (restoring instances needs "
                           f"≥ {MIN_CRIU[0]}.{MIN_CRIU[1]}; 3.17 fails on kernels ≥ 6.13): apps boot when woken")
    assert check is not None
    code, output = check
    if code != 0:
        last = (output.strip().splitlines() or [f"exit code {code}"])[-1]
        return WakeSupport("snapshots", False, f"CRIU {shown} at {path}: `criu check` fails ({last}): apps boot "
                           "when woken")
    return WakeSupport("snapshots", True, f"CRIU {shown} at {path} passes `criu check`; Shipyard does not restore "
                       "snapshots yet: apps boot when woken")


def detect_criu() -> WakeSupport:
    path = shutil.which("criu")
    if path is None:
        return criu_support(None, "", None)
    try:
        version = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=CHECK_TIMEOUT).stdout
        found = criu_version(version)
        check = None
        if found is not None and found >= MIN_CRIU:
            done = subprocess.run([path, "check"], capture_output=True, text=True, timeout=CHECK_TIMEOUT)
            check = (done.returncode, done.stdout + done.stderr)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return WakeSupport("snapshots", False, f"CRIU at {path} could not be run ({exc}): apps boot when woken")
    return criu_support(path, version, check)


def favored_in(mountinfo: str) -> bool:
    """Whether a cgroup hierarchy in /proc/self/mountinfo is mounted with `favordynmods`."""
    for line in mountinfo.splitlines():
        _, _, after = line.partition(" - ")
        fields = after.split()
        if len(fields) >= 3 and fields[0] in ("cgroup", "cgroup2") and "favordynmods" in fields[2].split(","):
            return True
    return False


def cgroup_moves(favored: bool, problem: str | None = None, opted_out: bool = False) -> WakeSupport:
    """The verdict on moving a new instance into its cgroup: `favored`, whether a hierarchy is mounted with
    favordynmods; `problem`, why Shipyard could not mount its own."""
    if favored:
        return WakeSupport("cgroup moves", True, "a cgroup hierarchy is mounted with favordynmods: a new instance "
                           "joins its cgroup in 0.1 ms, not after an RCU grace period (it stays until the machine "
                           "restarts; SHIPYARD_FAVOR_CGROUP_MOVES=0 has Shipyard not ask for it)")
    why = ("SHIPYARD_FAVOR_CGROUP_MOVES=0" if opted_out else
           f"Shipyard could not mount a hierarchy with favordynmods ({problem})" if problem else "not asked for")
    return WakeSupport("cgroup moves", False, f"each new instance waits for an RCU grace period (10-30 ms) to join "
                       f"its cgroup, part of every wake from zero: {why}")


def read_mountinfo() -> str:
    try:
        return Path("/proc/self/mountinfo").read_text()
    except OSError:
        return ""


def detect_wake_support(moves_problem: str | None = None, moves_opted_out: bool = False) -> list[WakeSupport]:
    return [detect_criu(), cgroup_moves(favored_in(read_mountinfo()), moves_problem, moves_opted_out)]


def favor_cgroup_moves(mount_point: Path) -> str | None:
    """Mount a cgroup v1 hierarchy of Shipyard's own, without controllers, with `favordynmods` at
    `mount_point`, unless it is there already; None once it is, else why it could not be.

    Moving a process into a cgroup takes the kernel's threadgroup lock for writing, and its first writer after
    a quiet moment waits for an RCU grace period: 10-30 ms of every wake from zero. `favordynmods` (Linux ≥ 6.1,
    on any hierarchy: the lock is one for all) keeps that lock in its slow mode instead, so a move takes
    0.1 ms, at the price the kernel documents: forks and exits a little dearer, machine-wide. It is left mounted
    when the platform stops (in /run: until the machine restarts), as Linux ≥ 6.17 keeps the mode on anyway
    once asked (it cannot be turned off safely); before 6.17, unmounting it turns it off.
    """
    try:
        mount_point.mkdir(parents=True, exist_ok=True)
        if not os.path.ismount(mount_point):
            _mount("cgroup", mount_point, "cgroup", f"none,name={MOVES_HIERARCHY},favordynmods")
    except OSError as exc:
        return exc.strerror or str(exc)
    return None


MOVES_HIERARCHY = "shipyard-moves"


def _mount(source: str, target: Path, fstype: str, options: str) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.mount(source.encode(), os.fsencode(target), fstype.encode(), ctypes.c_ulong(0), options.encode()) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, os.strerror(errno))
