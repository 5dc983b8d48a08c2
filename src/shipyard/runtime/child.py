"""App processes, each started from a thread of its own that then waits for it.

Why a thread: forking the platform's process (~200 MB) copies its page tables, 10-19 ms on the path of every
wake from zero, with the event loop blocked; vfork, which `subprocess` uses when there is no preexec_fn,
takes 0.1-0.4 ms. What stood in the way was the sandbox's Landlock domain, which only the process that starts
it can take: Landlock restricts the calling *thread*, so a fresh thread takes the domain and vforks
bubblewrap, which inherits it, and the platform's other threads stay as they were.

Why the thread stays until its child ends: a parent-death signal (bubblewrap's --die-with-parent, or
`die_with_parent` in a preexec_fn) fires when the *thread* that started the child ends, not the process. So the
thread is the child's parent for its whole life: it waits for it (as asyncio's threaded child watcher did)
and hands the exit code to the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import IO

from shipyard import landlock
from shipyard.proc import signal_group, stop_process, terminate_sandbox

Stdio = int | IO[bytes]


class Child:
    """What the platform holds of a running app process: its pid, its output as a stream (stdout=PIPE),
    and its exit code once it ends (negative: the signal that killed it), as asyncio's Process offers."""

    def __init__(self, pid: int, stdout: asyncio.StreamReader | None, exited: asyncio.Future[int],
                 sandboxed: bool = False, members: Callable[[], list[int]] | None = None) -> None:
        self.pid = pid
        self.stdout = stdout
        self._exited = exited
        self._sandboxed = sandboxed  # its leader is bubblewrap
        self._members = members

    def terminate(self) -> None:
        """SIGTERM to what it runs, so it can finish its work: a sandbox's processes but bubblewrap itself
        (proc.terminate_sandbox), else the whole group."""
        if self._sandboxed:
            terminate_sandbox(self.pid, self._members() if self._members else [])
        else:
            signal_group(self.pid, signal.SIGTERM)

    async def stop(self, grace: float) -> int | None:
        """SIGTERM (as `terminate`), `grace` seconds to end, then SIGKILL; its exit code."""
        return await stop_process(self, grace, terminate=self.terminate)

    @property
    def returncode(self) -> int | None:
        return self._exited.result() if self._exited.done() else None

    async def wait(self) -> int:
        return await asyncio.shield(self._exited)


async def start_child(argv: Sequence[str], *, cwd: str, env: Mapping[str, str], stdin: Stdio, stdout: Stdio,
                      stderr: Stdio, pass_fds: Sequence[int] = (), scoped: bool = False,
                      preexec: Callable[[], None] | None = None, limit: int = 2 ** 16,
                      sandboxed: bool = False, members: Callable[[], list[int]] | None = None) -> Child:
    """Start `argv` in a session of its own, with no file descriptor but stdio and `pass_fds`.

    `scoped`: in a Landlock domain of its own (no abstract unix socket, no signal beyond what it starts).
    `preexec`: run in the child before exec; it costs a fork instead of a vfork, so only what needs it
    (a console's controlling terminal) passes one.
    `sandboxed`: `argv` is bubblewrap's, which `Child.terminate` spares; `members`: the sandbox's processes as
    its cgroup lists them (one file, where its process group takes a read of every process on the machine).
    """
    loop = asyncio.get_running_loop()
    started: asyncio.Future[subprocess.Popen[bytes]] = loop.create_future()
    exited: asyncio.Future[int] = loop.create_future()

    def settle(future: asyncio.Future[object], result: object = None, error: BaseException | None = None) -> None:
        def apply() -> None:
            if future.done():
                return
            if error is not None:
                future.set_exception(error)
            else:
                future.set_result(result)
        with contextlib.suppress(RuntimeError):  # the loop is closed: the platform is gone, nobody waits
            loop.call_soon_threadsafe(apply)

    def parent() -> None:
        try:
            if scoped:
                landlock.scope_self()  # this thread only: it ends with the child
            popen = subprocess.Popen(
                list(argv), cwd=cwd, env=dict(env), stdin=stdin, stdout=stdout, stderr=stderr,
                pass_fds=tuple(pass_fds), close_fds=True, start_new_session=True, preexec_fn=preexec)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller as is
            settle(started, error=exc)  # type: ignore[arg-type]
            return
        settle(started, popen)  # type: ignore[arg-type]
        settle(exited, popen.wait())  # type: ignore[arg-type]

    threading.Thread(target=parent, name=f"child {argv[0]}", daemon=True).start()
    try:
        popen = await asyncio.shield(started)
    except asyncio.CancelledError:
        # The caller went away while the process was starting: it must not outlive the caller's interest.
        started.add_done_callback(_kill_started)
        raise
    reader = None
    if popen.stdout is not None:
        reader = asyncio.StreamReader(limit=limit, loop=loop)
        try:
            await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader, loop=loop), popen.stdout)
        except BaseException:
            signal_group(popen.pid, signal.SIGKILL)
            raise
    return Child(popen.pid, reader, exited, sandboxed, members)


def _kill_started(started: asyncio.Future[subprocess.Popen[bytes]]) -> None:
    if not started.cancelled() and started.exception() is None:
        popen = started.result()
        signal_group(popen.pid, signal.SIGKILL)
        if popen.stdout is not None:
            popen.stdout.close()
