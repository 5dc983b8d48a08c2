"""How every app process is started and how its output reaches the app's log.

Long-running instances, the release phase, `shipyard run` and consoles all go through `spawn`, so they
share the same sandbox, cgroup, session and log format.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import fcntl
import os
import re
import signal
import termios
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import IO

from shipyard import landlock
from shipyard.proc import die_with_parent, signal_group
from shipyard.runtime.cgroups import Cgroup
from shipyard.runtime.confinement import Confinement
from shipyard.runtime.logs import AppLog
from shipyard.runtime.spec import InstanceSpec

LINE_LIMIT = 1024 * 1024
# Terminal controls in an app's output would let it rewrite what the log viewer shows (a fake
# `shipyard[api]` line after a `\r`, colours, cursor moves): they are logged escaped.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\x80-\x9f]")


def printable(text: str) -> str:
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


@dataclass
class Spawned:
    proc: asyncio.subprocess.Process
    cgroup: Cgroup | None

    async def cleanup(self) -> None:
        """Once the process is gone: kill what it left in its cgroup (daemons), then remove the cgroup."""
        if self.cgroup is not None:
            await asyncio.to_thread(_kill_and_remove, self.cgroup)


def _kill_and_remove(cgroup: Cgroup) -> None:
    cgroup.kill()
    cgroup.remove()


def child_setup(cgroup: Cgroup | None, scoped: bool, terminal: bool = False) -> Callable[[], None]:
    """The preexec_fn of every confined child (app processes and build steps), run as root before exec: into
    its cgroup (unless the platform moves it in later), dying with the platform, a Landlock domain of its own,
    and for a console the pty as its controlling terminal."""
    def prepare() -> None:
        if cgroup is not None:
            cgroup.join()
        die_with_parent()
        if scoped:
            landlock.scope_self()
        if terminal:
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)
    return prepare


async def spawn(spec: InstanceSpec, env: Mapping[str, str], confinement: Confinement,
                stdio: tuple[int | IO[bytes], int | IO[bytes], int | IO[bytes]] | None = None,
                terminal: bool = False) -> Spawned:
    """Start `spec.command` through bash (so `$PORT` and `${PORT:-8000}` expand) in the app's sandbox and
    cgroup, in its own session (signalled as a group), dying with the platform.

    A sandboxed process joins its cgroup while bubblewrap builds the sandbox and waits on a pipe: moving a
    process between cgroups can wait for an RCU grace period (10-30 ms on cgroup v1), which then overlaps
    bubblewrap's own work instead of delaying the exec (and blocking the event loop, which waits for it).
    """
    cgroup = await asyncio.to_thread(confinement.cgroup, spec)
    sandboxed = confinement.confines(spec)
    gate = os.pipe() if sandboxed and cgroup is not None else None
    launch = confinement.launch(spec, env, block_fd=gate[0] if gate else None)
    prepare = child_setup(cgroup if gate is None else None, sandboxed and confinement.scoped, terminal)

    stdin, stdout, stderr = stdio or (asyncio.subprocess.DEVNULL, asyncio.subprocess.PIPE, asyncio.subprocess.STDOUT)
    try:
        try:
            proc = await asyncio.create_subprocess_exec(
                *launch.argv, cwd="/" if sandboxed else spec.cwd, env=launch.env, stdin=stdin, stdout=stdout,
                stderr=stderr, start_new_session=True, preexec_fn=prepare,
                pass_fds=launch.pass_fds + launch.inherited, limit=LINE_LIMIT)
        finally:
            launch.close()
            if gate:
                os.close(gate[0])
        if gate:
            try:
                await asyncio.to_thread(cgroup.adopt, proc.pid)  # type: ignore[union-attr]
            except BaseException:
                signal_group(proc.pid, signal.SIGKILL)
                await proc.wait()
                raise
            with contextlib.suppress(BrokenPipeError):  # bubblewrap already gone: its exit code says why
                os.write(gate[1], b"go")
    except BaseException:
        if cgroup is not None:
            await asyncio.to_thread(_kill_and_remove, cgroup)
        raise
    finally:
        if gate:
            os.close(gate[1])
    return Spawned(proc, cgroup)


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
        text = printable(raw.decode("utf-8", errors="replace").rstrip("\n"))
        recent.append(text)
        applog.write(source, text)
        if echo is not None:
            await echo("       " + text)
