"""Freezing an idle instance (no CPU, memory kept) and thawing it in milliseconds.

The cgroup freezer stops every process at once without a signal. Thawing them all at once breaks servers whose
parent process watches its workers' heartbeats: gunicorn's master, thawed together with its workers after a
freeze longer than its --timeout, sees every heartbeat stale and kills the workers (an HTTP 500 for the request
that woke them). So parents are held back: they get SIGSTOP while still frozen (delivered the moment they thaw,
before they run), the workers thaw and beat, and only then do the parents get SIGCONT.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Iterable

from shipyard.runtime.cgroups import Cgroup, children

WORKERS_HEAD_START = 0.05  # seconds the workers run before their parents: a heartbeat is one system call away


def parents_among(pids: Iterable[int]) -> list[int]:
    """The processes, of those given, with a child among them (gunicorn's master, a uvicorn reloader)."""
    members = set(pids)
    return sorted(pid for pid in members if members.intersection(children(pid)))


def _signal(pids: Iterable[int], signum: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass


async def freeze(cgroup: Cgroup) -> bool:
    return await asyncio.to_thread(cgroup.freeze)


async def thaw(cgroup: Cgroup) -> bool:
    """Workers first, their parents a moment later (see the module's docstring)."""
    parents = await asyncio.to_thread(lambda: parents_among(cgroup.pids()))
    _signal(parents, signal.SIGSTOP)
    thawed = await asyncio.to_thread(cgroup.thaw)
    if parents:
        await asyncio.sleep(WORKERS_HEAD_START)
        _signal(reversed(parents), signal.SIGCONT)
    return thawed
