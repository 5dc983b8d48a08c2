"""Processes that run once and end (the release phase): output streamed, exit code returned."""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Awaitable, Callable

from shipyard.proc import die_with_parent, stop_process
from shipyard.runtime.logs import AppLog
from shipyard.runtime.spec import InstanceSpec

RELEASE_PHASE_LIMIT = 3600.0


async def run_once(spec: InstanceSpec, applog: AppLog, echo: Callable[[str], Awaitable[None]],
                   limit: float = RELEASE_PHASE_LIMIT) -> tuple[int, list[str]]:
    """Run `spec` to completion (killed after `limit` seconds); returns its exit code and last 20 lines."""
    proc = await asyncio.create_subprocess_exec(
        "/bin/bash", "-c", spec.command, cwd=spec.cwd, env={**spec.env, "DYNO": spec.name},
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        start_new_session=True, preexec_fn=die_with_parent)
    assert proc.stdout is not None
    recent: collections.deque[str] = collections.deque(maxlen=20)
    source = f"app[{spec.name}]"

    async def pump() -> None:
        assert proc.stdout is not None
        async for raw in proc.stdout:
            line = raw.decode("utf-8", errors="replace").rstrip("\n")
            recent.append(line)
            applog.write(source, line)
            await echo("       " + line)

    try:
        await asyncio.wait_for(asyncio.gather(pump(), proc.wait()), timeout=limit)
    except asyncio.TimeoutError:
        await stop_process(proc, grace=5)
        return -1, list(recent)
    return proc.returncode if proc.returncode is not None else -1, list(recent)
