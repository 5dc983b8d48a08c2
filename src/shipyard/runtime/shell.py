"""How every app process is started and how its output reaches the app's log.

Long-running instances, the release phase and `shipyard run` all go through these two
functions, so they share the same shell, session and log format.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path

from shipyard.proc import die_with_parent
from shipyard.runtime.logs import AppLog

LINE_LIMIT = 1024 * 1024


async def spawn_shell(command: str, cwd: Path, env: Mapping[str, str]) -> asyncio.subprocess.Process:
    """Run `command` through bash (so `$PORT` and `${PORT:-8000}` expand) in its own session, which the
    platform can signal as a group, and which dies with the platform."""
    return await asyncio.create_subprocess_exec(
        "/bin/bash", "-c", command, cwd=cwd, env=dict(env), stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, start_new_session=True,
        preexec_fn=die_with_parent, limit=LINE_LIMIT)


async def pump_output(proc: asyncio.subprocess.Process, applog: AppLog, source: str,
                      recent: collections.deque[str], echo: Callable[[str], Awaitable[None]] | None = None) -> None:
    """Copy the process's output to the app's log line by line, keeping the last lines in `recent`."""
    assert proc.stdout is not None
    while True:
        try:
            raw = await proc.stdout.readline()
        except ValueError:  # a line over the limit: keep going with the rest
            continue
        if not raw:
            return
        text = raw.decode("utf-8", errors="replace").rstrip("\n")
        recent.append(text)
        applog.write(source, text)
        if echo is not None:
            await echo("       " + text)
