"""One push at a time per app, from the moment git gets the pack until it has moved the branch.

The deploy lock alone is not enough: git updates the branch only after the
pre-receive hook exits, so a second push waiting on the deploy lock would start
deploying before the first push's branch update, against a branch it no longer
matches. Holding this lock around the whole `git receive-pack` run lets the
second push's hook see the branch as the first push left it.
"""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable

from shipyard.git.http_backend import CgiResponse


def pkt_line(data: bytes) -> bytes:
    return f"{len(data) + 4:04x}".encode() + data


def push_capabilities(body_head: bytes, content_encoding: str = "") -> set[str]:
    """What the pushing client supports, from its first command line (`old new ref\\0caps`)."""
    if content_encoding == "gzip":
        body_head = zlib.decompressobj(wbits=31).decompress(body_head, 65536)
    try:
        length = int(body_head[:4], 16)
    except ValueError:
        return set()
    _, nul, caps = body_head[4:length].partition(b"\0")
    return set(caps.decode(errors="replace").split()) if nul else set()


def progress_message(text: str, capabilities: set[str]) -> bytes:
    """A sideband progress line: git prints it as `remote: <text>`; empty when the client has no sideband."""
    if not capabilities & {"side-band", "side-band-64k"}:
        return b""
    return pkt_line(b"\x02" + text.encode() + b"\n")


class PushQueue:
    def __init__(self) -> None:
        self._locks: dict[str, asyncio.Lock] = {}
        self._draining: set[asyncio.Task[None]] = set()

    async def serve(self, app: str, waiting_note: bytes,
                    receive_pack: Callable[[], Awaitable[CgiResponse]]) -> AsyncIterator[bytes]:
        """Run `receive_pack` once the app's earlier pushes are done, streaming its response.

        If the pusher goes away mid-push, the hook still deploys: the lock is held until git exits.
        """
        lock = self._lock(app)
        if lock.locked() and waiting_note:
            yield waiting_note
        await lock.acquire()
        response: CgiResponse | None = None
        try:
            response = await receive_pack()
            async for chunk in response.body:
                yield chunk
        finally:
            if response is None or response.process.returncode is not None:
                lock.release()
            else:
                task = asyncio.create_task(self._release_when_done(response, lock))
                self._draining.add(task)
                task.add_done_callback(self._draining.discard)

    @staticmethod
    async def _release_when_done(response: CgiResponse, lock: asyncio.Lock) -> None:
        try:
            stdout = response.process.stdout
            while stdout is not None and await stdout.read(65536):
                pass  # nobody reads git's output any more; a full pipe would stall the hook
            await response.process.wait()
        finally:
            lock.release()

    def _lock(self, app: str) -> asyncio.Lock:
        return self._locks.setdefault(app, asyncio.Lock())
