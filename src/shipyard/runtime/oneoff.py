"""Processes that run once and end (the release phase, `shipyard run`): output streamed, exit code returned."""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Awaitable, Callable

from shipyard.runtime.confinement import Confinement
from shipyard.runtime.logs import AppLog
from shipyard.runtime.shell import pump_output, spawn
from shipyard.runtime.spec import InstanceSpec

RELEASE_PHASE_LIMIT = 3600.0


async def run_once(spec: InstanceSpec, applog: AppLog, echo: Callable[[str], Awaitable[None]],
                   confinement: Confinement, limit: float = RELEASE_PHASE_LIMIT) -> tuple[int, list[str]]:
    """Run `spec` to completion (killed after `limit` seconds); returns its exit code and last 20 lines."""
    spawned = await spawn(spec, {**spec.env, "SHIPYARD_PROCESS": spec.name}, confinement)
    proc = spawned.proc
    recent: collections.deque[str] = collections.deque(maxlen=20)
    try:
        await asyncio.wait_for(asyncio.gather(pump_output(proc, applog, f"app[{spec.name}]", recent, echo),
                                              proc.wait()), timeout=limit)
    except asyncio.TimeoutError:
        await proc.stop(grace=5)
        return -1, list(recent)
    finally:
        if proc.returncode is None:  # cancelled (the caller went away): nothing may outlive it
            await proc.stop(grace=2)
        await spawned.cleanup()
    return proc.returncode if proc.returncode is not None else -1, list(recent)
