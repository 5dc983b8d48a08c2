"""Interactive one-off processes (`shipyard run todo` with a terminal): a shell on a pseudo-terminal.

The process gets the pty as its controlling terminal, so line editing, Ctrl-C and full-screen
programs behave as in a local shell; the API carries the bytes between the pty and the user's terminal.
"""

from __future__ import annotations

import asyncio
import errno
import fcntl
import os
import pty
import struct
import termios

from shipyard.runtime.confinement import Confinement
from shipyard.runtime.shell import Spawned, spawn
from shipyard.runtime.spec import InstanceSpec

READ_SIZE = 65536


def _set_size(fd: int, columns: int, rows: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", max(rows, 1), max(columns, 1), 0, 0))


class Console:
    """One process on a pty: `read` its output, `write` keystrokes, `resize`, `wait` for its exit code."""

    def __init__(self, name: str, spawned: Spawned, master: int) -> None:
        self.name = name  # run.N
        self._spawned = spawned
        self._proc = spawned.proc
        self._master = master
        os.set_blocking(master, False)

    @classmethod
    async def start(cls, spec: InstanceSpec, confinement: Confinement, *, columns: int, rows: int,
                    term: str) -> Console:
        master, slave = pty.openpty()
        try:
            _set_size(slave, columns, rows)
            env = {**spec.env, "SHIPYARD_PROCESS": spec.name, "TERM": term or "xterm-256color"}
            spawned = await spawn(spec, env, confinement, stdio=(slave, slave, slave), terminal=True)
        except BaseException:
            os.close(master)
            raise
        finally:
            os.close(slave)
        return cls(spec.name, spawned, master)

    async def read(self) -> bytes:
        """The next output; b"" once the process and everything it started have closed the terminal."""
        while True:
            try:
                return os.read(self._master, READ_SIZE)
            except BlockingIOError:
                await self._ready(asyncio.get_running_loop().add_reader, asyncio.get_running_loop().remove_reader)
            except OSError as exc:
                if exc.errno == errno.EIO:  # Linux's end of file on a pty master
                    return b""
                raise

    async def write(self, data: bytes) -> None:
        """Keystrokes for the process; waits (without blocking the platform) while it is not reading."""
        view = memoryview(data)
        while view:
            try:
                view = view[os.write(self._master, view):]
            except BlockingIOError:
                await self._ready(asyncio.get_running_loop().add_writer, asyncio.get_running_loop().remove_writer)

    async def _ready(self, add, remove) -> None:  # type: ignore[no-untyped-def]
        ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        add(self._master, lambda: ready.done() or ready.set_result(None))
        try:
            await ready
        finally:
            remove(self._master)

    def resize(self, columns: int, rows: int) -> None:
        _set_size(self._master, columns, rows)

    async def wait(self) -> int:
        code = await self._proc.wait()
        return code if code >= 0 else 128 - code  # killed by signal N: the shell's 128+N

    async def close(self) -> None:
        """Stop the process if it still runs (the user went away), then release the pty."""
        if self._proc.returncode is None:
            await self._proc.stop(grace=2)
        await self._spawned.cleanup()  # background jobs in process groups of their own go too
        if self._master >= 0:
            os.close(self._master)
            self._master = -1
