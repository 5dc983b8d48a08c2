"""HAProxy's runtime API ("stats socket", level admin) over its unix socket: one command per connection."""

from __future__ import annotations

import asyncio
import csv
import io
from pathlib import Path

from shipyard.errors import PlatformError

TIMEOUT = 5.0
# What the commands the edge sends answer when they worked; anything else is HAProxy's reason for refusing.
_DONE = ("", "New server registered.", "Server deleted.", "Done.")


class RuntimeAPI:
    def __init__(self, socket_path: Path) -> None:
        self.socket_path = socket_path

    async def send(self, command: str, timeout: float = TIMEOUT) -> str:
        """The command's answer; PlatformError when the socket does not answer in time."""
        try:
            return await asyncio.wait_for(self._exchange(command), timeout)
        except (OSError, asyncio.TimeoutError) as exc:
            raise PlatformError(f"The edge's runtime API ({self.socket_path}) did not answer `{command}`: {exc!r}",
                                hint="Is HAProxy still running? See the edge's log (logs/edge.log).") from None

    async def _exchange(self, command: str) -> str:
        reader, writer = await asyncio.open_unix_connection(str(self.socket_path))
        try:
            writer.write(command.encode() + b"\n")
            await writer.drain()
            return (await reader.read()).decode(errors="replace")
        finally:
            writer.close()

    async def run(self, command: str, success: str | None = None) -> None:
        """Run a command that changes the edge; PlatformError naming HAProxy's answer if it refused.

        success: text HAProxy's answer holds when the command worked (the ssl commands say more than "Done").
        """
        answer = await self.send(command)
        if (success not in answer) if success else refused(answer):
            raise PlatformError(f"The edge refused `{command.splitlines()[0]}`: {answer.strip()}",
                                hint="See the edge's log (logs/edge.log).")

    async def answers(self, timeout: float) -> bool:
        try:
            return "Name: HAProxy" in await self.send("show info", timeout)
        except PlatformError:
            return False

    async def server_sessions(self) -> dict[tuple[str, str], int]:
        """(backend, server) → requests in flight (`scur`) for every app server."""
        return sessions_from_stat(await self.send("show stat -1 4 -1"))


def refused(answer: str) -> bool:
    return answer.strip() not in _DONE


def sessions_from_stat(csv_text: str) -> dict[tuple[str, str], int]:
    """`show stat`'s CSV (header line starts with "# "): current sessions per (proxy, server)."""
    text = csv_text.lstrip("# ")
    rows = csv.DictReader(io.StringIO(text))
    found: dict[tuple[str, str], int] = {}
    for row in rows:
        if not row.get("pxname") or row.get("svname") in ("FRONTEND", "BACKEND", None):
            continue
        found[(row["pxname"], row["svname"])] = int(row.get("scur") or 0)
    return found
