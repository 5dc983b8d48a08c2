"""The platform's end of HAProxy's request log: a unix datagram socket HAProxy sends one line per request to.

Datagrams, not a stream: HAProxy never waits for the platform, and when the platform is behind, lines are
dropped by the kernel instead of slowing the edge (the request path must not depend on Python).
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


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, on_line: Callable[[str], None]) -> None:
        self._on_line = on_line

    def datagram_received(self, data: bytes, addr: object) -> None:
        for line in data.decode("utf-8", errors="replace").splitlines():
            self._on_line(line)

    def error_received(self, exc: Exception) -> None:  # nothing to answer: datagrams are fire and forget
        pass


class LogReceiver:
    def __init__(self, path: Path, on_line: Callable[[str], None]) -> None:
        self.path = path
        self._on_line = on_line
        self._transport: asyncio.DatagramTransport | None = None

    async def start(self) -> None:
        if self._transport is not None:
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
        transport, _ = await asyncio.get_running_loop().create_datagram_endpoint(
            lambda: _Protocol(self._on_line), sock=sock)
        self._transport = transport

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
            self._transport = None
        self.path.unlink(missing_ok=True)
