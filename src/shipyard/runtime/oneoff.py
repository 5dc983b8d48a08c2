"""Processes that run once and end (the release phase, `shipyard run`): output streamed, exit code returned."""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Awaitable, Callable

from shipyard.proc import stop_process
from shipyard.runtime.logs import AppLog
from shipyard.runtime.shell import pump_output, spawn_shell
from shipyard.runtime.spec import InstanceSpec

RELEASE_PHASE_LIMIT = 3600.0


async def run_once(spec: InstanceSpec, applog: AppLog, echo: Callable[[str], Awaitable[None]],
                   limit: float = RELEASE_PHASE_LIMIT) -> tuple[int, list[str]]:
    """Run `spec` to completion (killed after `limit` seconds); returns its exit code and last 20 lines."""
    proc = await spawn_shell(spec.command, spec.cwd, {**spec.env, "DYNO": spec.name})
    recent: collections.deque[str] = collections.deque(maxlen=20)
    try:
        await asyncio.wait_for(asyncio.gather(pump_output(proc, applog, f"app[{spec.name}]", recent, echo),
                                              proc.wait()), timeout=limit)
    except asyncio.TimeoutError:
        await stop_process(proc, grace=5)
        return -1, list(recent)
    return proc.returncode if proc.returncode is not None else -1, list(recent)
