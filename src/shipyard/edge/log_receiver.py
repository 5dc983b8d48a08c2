"""The platform's end of HAProxy's request log: a unix datagram socket HAProxy sends one line per request to.

Datagrams, not a stream: HAProxy never waits for the platform, and when the platform is behind, lines are
dropped by the kernel instead of slowing the edge (the request path must not depend on Python). The socket is
read at most every PAUSE seconds, draining what queued meanwhile in one call: under load one wakeup reads a few
hundred lines, where a wakeup per line cost the platform as much CPU as the edge's own per request.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import Callable
from pathlib import Path

from shipyard.errors import PlatformError

RECEIVE_BUFFER = 4 * 1024 * 1024  # room for a burst of lines while the event loop is busy
BATCH = 2048
PAUSE = 0.05  # seconds between reads: the kernel's buffer holds what arrives meanwhile
DATAGRAM = 8192  # HAProxy's `len` for these lines


class LogReceiver:
    def __init__(self, path: Path, on_lines: Callable[[list[str]], None]) -> None:
        self.path = path
        self._on_lines = on_lines
        self._sock: socket.socket | None = None
        self._paused: asyncio.TimerHandle | None = None

    async def start(self) -> None:
        if self._sock is not None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.unlink(missing_ok=True)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
        try:
            sock.bind(str(self.path))
        except OSError as exc:
            sock.close()
            raise PlatformError(f"The edge cannot open its request log socket {self.path}: {exc.strerror or exc}.",
                                hint="A unix socket's path has at most 107 bytes: start Shipyard with a shorter "
                                     "--data-dir.") from None
        os.chmod(self.path, 0o600)  # only root (HAProxy, the platform) may write request lines
        sock.setblocking(False)
        asyncio.get_running_loop().add_reader(sock.fileno(), self._drain)
        self._sock = sock

    def _drain(self) -> None:
        assert self._sock is not None
        lines: list[str] = []
        for _ in range(BATCH):
            try:
                data = self._sock.recv(DATAGRAM)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                break
            lines.append(data.decode("utf-8", errors="replace").rstrip("\n"))
        if lines:
            self._on_lines(lines)
            # Let lines gather: reading resumes after a pause instead of at the next datagram.
            loop = asyncio.get_running_loop()
            loop.remove_reader(self._sock.fileno())
            self._paused = loop.call_later(PAUSE, self._resume)

    def _resume(self) -> None:
        self._paused = None
        if self._sock is not None:
            asyncio.get_running_loop().add_reader(self._sock.fileno(), self._drain)

    def close(self) -> None:
        if self._paused is not None:
            self._paused.cancel()
            self._paused = None
        if self._sock is not None:
            with contextlib.suppress(RuntimeError, ValueError):  # the loop may be closed already
                asyncio.get_running_loop().remove_reader(self._sock.fileno())
            self._sock.close()
            self._sock = None
        self.path.unlink(missing_ok=True)
