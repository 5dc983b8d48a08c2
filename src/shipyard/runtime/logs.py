"""Per-app logs on disk: timestamped lines tagged with their source, rotated by size."""

from __future__ import annotations

import os
from datetime import datetime, timezone
from pathlib import Path

MAX_BYTES = 10 * 1024 * 1024
BACKUPS = 3


def format_line(source: str, text: str, now: datetime | None = None) -> str:
    stamp = (now or datetime.now(timezone.utc)).isoformat(timespec="microseconds")
    return f"{stamp} {source}: {text.rstrip()}\n"


class AppLog:
    """Append-only log of one app; `app.log` rotates to `app.log.1` … when it grows past max_bytes."""

    def __init__(self, path: Path, max_bytes: int = MAX_BYTES, backups: int = BACKUPS) -> None:
        self.path = path
        self._max_bytes = max_bytes
        self._backups = backups
        self.dropped = 0  # lines lost to a full (or failing) disk since the last one written
        path.parent.mkdir(parents=True, exist_ok=True)

    def write(self, source: str, text: str) -> None:
        """Append a line. A full disk never stops the caller (an app's output would back up and hang it):
        the line is dropped and counted, and the count is logged once lines can be written again."""
        line = format_line(source, text)
        if self.dropped:
            line = format_line("shipyard[logs]", f"{self.dropped} log line(s) were dropped: the disk was full "
                               "(or could not be written)") + line
        try:
            # Rotate before writing so the current file is never left empty by a rotation.
            if self.path.exists() and self.path.stat().st_size + len(line) > self._max_bytes:
                self._rotate()
            with open(self.path, "a", encoding="utf-8", errors="replace") as f:
                f.write(line)
        except OSError:
            self.dropped += 1
            return
        self.dropped = 0

    def _rotate(self) -> None:
        for i in range(self._backups - 1, 0, -1):
            older = self.path.with_name(f"{self.path.name}.{i}")
            if older.exists():
                os.replace(older, self.path.with_name(f"{self.path.name}.{i + 1}"))
        os.replace(self.path, self.path.with_name(f"{self.path.name}.1"))

    def tail(self, lines: int) -> list[str]:
        if not self.path.exists():
            return []
        with open(self.path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 256 * 1024))
            data = f.read().decode("utf-8", errors="replace")
        return data.splitlines()[-lines:] if lines > 0 else []


async def follow(path: Path, lines: int, poll: float = 0.2):  # type: ignore[no-untyped-def]
    """Yield the last `lines` lines, then new lines as they are written (surviving rotation)."""
    import asyncio

    for line in AppLog(path).tail(lines):
        yield line + "\n"
    position = path.stat().st_size if path.exists() else 0
    inode = path.stat().st_ino if path.exists() else None
    pending = b""
    while True:
        await asyncio.sleep(poll)
        if not path.exists():
            continue
        stat = path.stat()
        if stat.st_ino != inode or stat.st_size < position:
            inode, position, pending = stat.st_ino, 0, b""
        if stat.st_size == position:
            continue
        with open(path, "rb") as f:
            f.seek(position)
            data = f.read()
        position += len(data)
        pending += data
        *complete, pending = pending.split(b"\n")
        for raw in complete:
            yield raw.decode("utf-8", errors="replace") + "\n"
