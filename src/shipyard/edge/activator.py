"""The activator: where the edge sends requests for an app scaled to zero.

It holds each request, has the platform start an instance (`wake`), and then hands the connection to that
instance byte for byte, so any HTTP request (a body, a WebSocket upgrade) goes through unchanged. Once the
instance is up the edge routes the app's requests to it directly: only the first requests after an idle time
pass through Python. A request held longer than the wake timeout is answered with a 503 page saying why.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

from shipyard.errors import ShipyardError

MAX_HEAD = 64 * 1024  # a request head larger than this is refused (the edge allows less anyway)
HEAD_TIMEOUT = 10.0
PIPE_CHUNK = 65536

Resolve = Callable[[str], "str | None"]  # hostname → app
Wake = Callable[[str], Awaitable[str]]  # app → the address of a ready instance


def host_of(head: bytes) -> str | None:
    """The Host header's hostname (lower case, without a port) of a request head."""
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"host":
            host = value.strip().decode("latin-1").lower()
            return host.rsplit(":", 1)[0] if not host.endswith("]") else host
    return None


def error_response(status: int, reason: str, text: str) -> bytes:
    body = text.encode()
    return (f"HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain; charset=utf-8\r\nCache-Control: no-store\r\n"
            f"Retry-After: 5\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode() + body


class Activator:
    def __init__(self, resolve: Resolve, wake: Wake, timeout: float) -> None:
        self._resolve = resolve
        self._wake = wake
        self._timeout = timeout
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()
        self.address = ""

    async def start(self, host: str = "127.0.0.1") -> str:
        self._server = await asyncio.start_server(self._accepted, host, 0)
        port = self._server.sockets[0].getsockname()[1]
        self.address = f"{host}:{port}"
        return self.address

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)

    async def _accepted(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        try:
            await self._serve(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError):
            pass  # the client (the edge) went away, or sent no complete head in time
        finally:
            self._connections.discard(task)
            writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await writer.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), HEAD_TIMEOUT)
        if len(head) > MAX_HEAD:
            writer.write(error_response(431, "Request Header Fields Too Large", "The request's head is too large.\n"))
            return
        app = self._resolve(host_of(head) or "")
        if app is None:
            writer.write(error_response(404, "Not Found", "No application is served at this address.\n"))
            return
        try:
            address = await asyncio.wait_for(self._wake(app), self._timeout)
        except TimeoutError:
            writer.write(error_response(503, "Service Unavailable", (
                f"Application '{app}' was scaled to zero and did not start within {self._timeout:g} s.\n"
                f"See why with `shipyard logs {app}`.\n")))
            return
        except ShipyardError:
            # Not the error's text: it quotes the app's own output, which is for its owner, not for visitors.
            writer.write(error_response(503, "Service Unavailable", (
                f"Application '{app}' was scaled to zero and could not start.\n"
                f"See why with `shipyard logs {app}`.\n")))
            return
        host, _, port = address.rpartition(":")
        upstream_reader, upstream_writer = await asyncio.open_connection(host, int(port))
        try:
            upstream_writer.write(head)
            await asyncio.gather(_pipe(reader, upstream_writer), _pipe(upstream_reader, writer))
        finally:
            upstream_writer.close()


async def _pipe(source: asyncio.StreamReader, target: asyncio.StreamWriter) -> None:
    """Copy until the source ends, then end the target's side (half-close), as a TCP proxy does."""
    try:
        while chunk := await source.read(PIPE_CHUNK):
            target.write(chunk)
            await target.drain()
        if target.can_write_eof():
            target.write_eof()
    except (ConnectionError, OSError):
        pass
