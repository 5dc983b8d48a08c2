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
import signal
import termios
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import IO

from shipyard.proc import die_with_parent, signal_group
from shipyard.runtime.cgroups import Cgroup
from shipyard.runtime.child import Child, start_child
from shipyard.runtime.confinement import Confinement
from shipyard.runtime.loglimits import LineSplitter, cut
from shipyard.runtime.logs import AppLog, printable
from shipyard.runtime.spec import InstanceSpec

# What the pipe reader buffers before it stops reading (the app then waits on its pipe for a moment).
LINE_LIMIT = 1024 * 1024
# Read at once: whatever the pipe reader holds.
READ_SIZE = 4 * 1024 * 1024
# An app's output is read at most this often (seconds) ...
COALESCE = 0.005
# ... while its pipe holds what it writes meanwhile: 1 MiB (Linux's default limit for pipes) is 5 ms of
# 200 MB/s, more than a process capped at one CPU writes through a pipe.
PIPE_SIZE = 1024 * 1024


@dataclass
class Spawned:
    proc: Child
    cgroup: Cgroup | None

    async def cleanup(self) -> None:
        """Once the process is gone: kill what it left in its cgroup (daemons), then remove the cgroup."""
        if self.cgroup is not None:
            await asyncio.to_thread(_kill_and_remove, self.cgroup)


def _kill_and_remove(cgroup: Cgroup) -> None:
    cgroup.kill()
    cgroup.remove()


def child_setup(cgroup: Cgroup | None, sandboxed: bool, terminal: bool = False) -> Callable[[], None] | None:
    """The preexec_fn of a child, run before exec, or None when it needs none (then it is vforked, not forked:
    see child.py): into its cgroup (unless the platform moves it in later), dying with the platform (bubblewrap
    does that for a sandboxed one) and for a console the pty as its controlling terminal."""
    if sandboxed and not terminal and cgroup is None:
        return None

    def prepare() -> None:
        if cgroup is not None:
            cgroup.join()
        die_with_parent()
        if terminal:
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)
    return prepare


async def spawn(spec: InstanceSpec, env: Mapping[str, str], confinement: Confinement,
                stdio: tuple[int | IO[bytes], int | IO[bytes], int | IO[bytes]] | None = None,
                terminal: bool = False, cpu_boost: bool = False) -> Spawned:
    """Start `spec.command` through bash (so `$PORT` and `${PORT:-8000}` expand) in the app's sandbox and
    cgroup, in its own session (signalled as a group), dying with the platform.

    A sandboxed process is vforked (child.py) and joins its cgroup while bubblewrap builds the sandbox and waits
    on a pipe: where no hierarchy favors moves (wake_speed.favor_cgroup_moves), moving a process between cgroups
    can wait for an RCU grace period (10-30 ms), which then overlaps bubblewrap's own work instead of delaying
    the exec.

    `cpu_boost`: its cgroup starts without the size's CPU quota (its weight stays the size's), for an instance's
    boot; the caller applies the quota once it is ready (Cgroup.limit_cpu).
    """
    sandboxed = confinement.confines(spec)
    cgroup = await asyncio.to_thread(confinement.cgroup, spec, cpu_boost)
    gate = os.pipe() if sandboxed and cgroup is not None else None
    # The move's wait for a grace period, paid while the child is forked (CgroupTree.prime; not earlier: it
    # holds the lock that making a cgroup needs).
    priming = asyncio.create_task(asyncio.to_thread(confinement.prime_cgroups)) if gate else None
    launch = confinement.launch(spec, env, block_fd=gate[0] if gate else None)
    prepare = child_setup(cgroup if gate is None else None, sandboxed, terminal)

    stdin, stdout, stderr = stdio or (asyncio.subprocess.DEVNULL, asyncio.subprocess.PIPE, asyncio.subprocess.STDOUT)
    try:
        try:
            proc = await start_child(
                launch.argv, cwd="/" if sandboxed else spec.cwd, env=launch.env, stdin=stdin, stdout=stdout,
                stderr=stderr, pass_fds=launch.pass_fds + launch.inherited, scoped=sandboxed and confinement.scoped,
                preexec=prepare, limit=LINE_LIMIT, sandboxed=sandboxed,
                members=cgroup.pids if cgroup is not None else None)
        finally:
            launch.close()
            if gate:
                os.close(gate[0])
        if gate:
            try:
                assert priming is not None  # made with the gate
                await priming
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


async def pump_output(proc: Child, applog: AppLog, source: str,
                      recent: collections.deque[str], echo: Callable[[str], Awaitable[None]] | None = None) -> None:
    """Copy the process's output to the app's log, keeping its last lines in `recent`, until it closes.

    The pipe is drained faster than an app can write, but a flood costs this loop little: after each chunk
    the pipe is left alone for COALESCE seconds (a pipe of PIPE_SIZE holds what the app writes meanwhile,
    so it does not block), so a flood is read in a few large chunks a second instead of one per write;
    a chunk costs a split and a few operations however many lines it holds (the rate limit drops lines
    before anything is formatted, and formatting and writing happen on the log's writer thread).
    """
    assert proc.stdout is not None
    pipe = _enlarge_pipe(proc.stdout)
    # What the transport reads from the pipe at once: a chunk that big may have left more in the pipe.
    drained_below = getattr(pipe, "max_size", 256 * 1024)
    limit = applog.limits.line_bytes
    lines = LineSplitter(limit)
    keep = recent.maxlen
    while True:
        chunk = await proc.stdout.read(READ_SIZE)
        complete = lines.feed(chunk) if chunk else lines.end()
        if complete:
            applog.output(source, complete)
            shown = complete if echo is not None or keep is None else complete[-keep:]
            texts = [printable(cut(raw, limit).decode("utf-8", errors="replace")) for raw in shown]
            recent.extend(texts)
            if echo is not None:
                for text in texts:
                    await echo("       " + text)
        if not chunk:
            return
        if len(chunk) >= drained_below:
            continue  # the pipe held more than one read: read on before leaving it alone
        if pipe is not None:
            pipe.pause_reading()
        try:
            await asyncio.sleep(COALESCE)
        finally:
            if pipe is not None:
                pipe.resume_reading()


def _enlarge_pipe(stream: asyncio.StreamReader) -> asyncio.ReadTransport | None:
    """The transport reading `stream`'s pipe, whose buffer is grown to PIPE_SIZE; None where that cannot be
    done (asyncio keeps the transport private): the pipe is then never left alone, only this coroutine's
    wake-ups are spaced out, which costs the loop more."""
    transport = getattr(stream, "_transport", None)
    pipe = transport.get_extra_info("pipe") if isinstance(transport, asyncio.ReadTransport) else None
    if pipe is None:
        return None
    try:
        fcntl.fcntl(pipe.fileno(), fcntl.F_SETPIPE_SZ, PIPE_SIZE)
    except OSError:
        return None
    return transport
