"""Freezing an idle instance (no CPU, memory kept) and thawing it in milliseconds.

The cgroup freezer stops every process at once without a signal. Thawing them all at once breaks servers whose
parent process watches its workers' heartbeats: gunicorn's master, thawed together with its workers after a
freeze longer than its --timeout, sees every heartbeat stale and kills the workers (an HTTP 500 for the request
that woke them). So parents are held back: they get SIGSTOP while still frozen (delivered the moment they thaw,
before they run), the workers thaw and beat, and only then do the parents get SIGCONT.

A worker that was idle does not beat at once, though: a wait the freezer interrupted resumes with the time it
had left when it was frozen (the frozen time does not count), so gunicorn's idle sync worker beats again only up
to half its --timeout after the thaw. Its heartbeat is an unlinked temp file ("wgunicorn-…") it touches: its
mtime set to the monotonic clock (gunicorn ≥ 22), or its ctime by an fchmod (before); the platform sets both
times for it at the thaw, as the worker would.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Iterable
from pathlib import Path

from shipyard.runtime.cgroups import Cgroup, children

WORKERS_HEAD_START = 0.05  # seconds the workers run before their parents: a heartbeat is one system call away


def parents_among(pids: Iterable[int]) -> list[int]:
    """The processes, of those given, with a child among them (gunicorn's master, a uvicorn reloader)."""
    members = set(pids)
    return sorted(pid for pid in members if members.intersection(children(pid)))


def refresh_heartbeats(pids: Iterable[int]) -> int:
    """Touch the gunicorn worker heartbeat files the processes hold open (see the module's docstring); returns
    how many. A tenant choosing such a name only gets the times of a file it holds open changed."""
    touched, now = 0, time.monotonic()
    for pid in pids:
        try:
            descriptors = list(Path(f"/proc/{pid}/fd").iterdir())
        except OSError:  # exited meanwhile
            continue
        for descriptor in descriptors:
            try:
                target = os.readlink(descriptor)
                if "/wgunicorn-" in target and target.endswith(" (deleted)"):
                    os.utime(descriptor, (now, now))  # the ctime follows: now, on the wall clock
                    touched += 1
            except OSError:  # closed meanwhile, or on a read-only mount
                continue
    return touched


def _thaw_workers(cgroup: Cgroup) -> tuple[list[int], bool]:
    """Stop the parents (still frozen), thaw, and refresh the workers' heartbeats: (parents, thawed)."""
    pids = cgroup.pids()
    parents = parents_among(pids)
    _signal(parents, signal.SIGSTOP)
    thawed = cgroup.thaw()
    refresh_heartbeats(set(pids) - set(parents))
    return parents, thawed


def _signal(pids: Iterable[int], signum: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass


async def freeze(cgroup: Cgroup) -> bool:
    return await asyncio.to_thread(cgroup.freeze)


async def thaw(cgroup: Cgroup, with_parents: bool = False) -> bool:
    """Workers first, their parents a moment later (see the module's docstring). Returns once the workers run:
    they take requests themselves (gunicorn's workers accept on the shared socket), so the request that woke
    them need not wait for the parents; `with_parents`: once the parents run too (before a stop's SIGTERM)."""
    parents, thawed = await asyncio.to_thread(_thaw_workers, cgroup)
    if parents and with_parents:
        await asyncio.sleep(WORKERS_HEAD_START)
        _signal(reversed(parents), signal.SIGCONT)
    elif parents:
        asyncio.get_running_loop().call_later(WORKERS_HEAD_START, _signal, list(reversed(parents)), signal.SIGCONT)
    return thawed
