"""Waking from zero without booting: what this machine offers, detected once at start, shown by `shipyard doctor`.

CRIU ≥ 4.1 can restore a dumped, ready instance in 50-150 ms where booting takes longer; it is optional and
never required (Debian 12's criu 3.17 fails on kernels ≥ 6.13). On cgroup v1 and v2 alike, moving a new
instance into its cgroup waits for an RCU grace period unless RCU grace periods are expedited
(/sys/kernel/rcu_expedited): a machine-wide setting, so Shipyard turns it on only when asked
(SHIPYARD_EXPEDITE_RCU=1) and puts it back as it was when it stops.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

MIN_CRIU = (4, 1)
CHECK_TIMEOUT = 20.0
RCU_EXPEDITED = Path("/sys/kernel/rcu_expedited")


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


def cgroup_moves(expedited: str | None, by_shipyard: bool = False) -> WakeSupport:
    """`expedited`: the content of /sys/kernel/rcu_expedited (None: not readable)."""
    if expedited is not None and expedited.strip() not in ("", "0"):
        who = " (SHIPYARD_EXPEDITE_RCU=1: set by Shipyard, put back when it stops)" if by_shipyard else ""
        return WakeSupport("cgroup moves", True, f"RCU grace periods are expedited{who}: a new instance joins its "
                           "cgroup in under a millisecond")
    return WakeSupport("cgroup moves", False, "each new instance waits for an RCU grace period (10-30 ms) to join "
                       "its cgroup, part of every wake from zero; SHIPYARD_EXPEDITE_RCU=1 has Shipyard expedite "
                       "them while it runs (/sys/kernel/rcu_expedited, a machine-wide setting)")


def read_rcu_expedited() -> str | None:
    try:
        return RCU_EXPEDITED.read_text()
    except OSError:
        return None


def detect_wake_support(rcu_by_shipyard: bool = False) -> list[WakeSupport]:
    return [detect_criu(), cgroup_moves(read_rcu_expedited(), rcu_by_shipyard)]


class ExpeditedRcu:
    """Expedited RCU grace periods while the platform runs (asked for with SHIPYARD_EXPEDITE_RCU=1), as they
    were before once it stops."""

    def __init__(self, path: Path = RCU_EXPEDITED) -> None:
        self._path = path
        self._previous: str | None = None

    def enable(self) -> bool:
        """False when it cannot be set (not root, no such file)."""
        try:
            self._previous = self._path.read_text().strip()
            self._path.write_text("1")
            return True
        except OSError:
            self._previous = None
            return False

    def restore(self) -> None:
        if self._previous is not None:
            self._path.write_text(self._previous)
            self._previous = None
