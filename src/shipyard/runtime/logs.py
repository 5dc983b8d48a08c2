"""Per-app logs on disk: timestamped lines tagged with their source, rotated by size.

The platform's own lines (`shipyard[...]`) are always kept; the app's output is held to the limits of
loglimits.py. On a running platform every line goes through one writer thread (logwriter.py), so a slow or
full disk never stalls the event loop that reads the apps' output and serves the API.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from shipyard.runtime.loglimits import LogLimits, TokenBucket, cut
from shipyard.runtime.logwriter import LogWriter

MAX_BYTES = 10 * 1024 * 1024
BACKUPS = 3
# Terminal controls in an app's output would let it rewrite what the log viewer shows (a fake
# `shipyard[api]` line after a `\r`, colours, cursor moves): they are logged escaped.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\x80-\x9f]")
# What a queued line costs besides its text (stamp, source, the list it sits in), for the queue's bound.
_LINE_OVERHEAD = 64
_FLUSH_TIMEOUT = 5.0


def printable(text: str) -> str:
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def format_line(source: str, text: str, now: datetime | None = None) -> str:
    stamp = (now or datetime.now(timezone.utc)).isoformat(timespec="microseconds")
    return f"{stamp} {source}: {text.rstrip()}\n"


def lines_dropped(count: int) -> str:
    return f"{count} line{'' if count == 1 else 's'} dropped"


@dataclass(frozen=True)
class Output:
    """Lines an app wrote, as read (bytes, already cut to length): decoded and formatted by the writer."""

    source: str
    stamp: float  # when they were read (time.time()), not when written
    lines: list[bytes]

    @property
    def size(self) -> int:
        return sum(map(len, self.lines)) + _LINE_OVERHEAD * len(self.lines)

    def render(self) -> list[str]:
        now = datetime.fromtimestamp(self.stamp, timezone.utc)
        return [format_line(self.source, printable(line.decode("utf-8", errors="replace")), now)
                for line in self.lines]


class AppLog:
    """Append-only log of one app; `app.log` rotates to `app.log.1` … when it grows past max_bytes.

    `write` records a platform event, `output` the app's output (rate limited and cut, the drops counted
    in a `shipyard[logs]` line at most once per `notice_every`). With a `writer` both are queued in order
    for its thread; without one (or once it is closed) they are written at once.
    """

    def __init__(self, path: Path, max_bytes: int = MAX_BYTES, backups: int = BACKUPS,
                 writer: LogWriter | None = None, limits: LogLimits | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.path = path
        self._max_bytes = max_bytes
        self._backups = backups
        self._writer = writer
        self._limits = limits = limits or LogLimits()
        self._clock = clock
        self._bucket = TokenBucket(limits.lines_per_second, limits.burst, clock())
        self.dropped = 0  # lines lost to a full (or failing) disk since the last one written
        self.over_rate = 0  # lines over the app's rate since the last notice
        self.unqueued = 0  # lines the writer's full queue refused since the last notice
        self._noticed = -math.inf
        self._notice_timer: asyncio.TimerHandle | None = None
        with contextlib.suppress(OSError):  # a full disk: made when a line can be written
            path.parent.mkdir(parents=True, exist_ok=True)

    @property
    def limits(self) -> LogLimits:
        return self._limits

    def write(self, source: str, text: str) -> None:
        """Append one of the platform's lines. Never limited; a full disk drops and counts it (an app's
        output would otherwise back up and hang it), and the count is logged once lines can be written."""
        line = format_line(source, text)
        if self._writer is None or not self._writer.put(self, line, None):
            self.append([line])

    def output(self, source: str, lines: list[bytes]) -> None:
        """Record complete lines of the app's output (without their newlines). Costs the event loop a few
        operations per call, however many lines are over the rate."""
        if not lines:
            return
        granted = self._bucket.take(len(lines), self._clock())
        if granted:
            batch = Output(source, time.time(), [cut(line, self._limits.line_bytes) for line in lines[:granted]])
            if self._writer is None or self._writer.closed:
                self.append([batch])
            elif not self._writer.put(self, batch, batch.size):
                self.unqueued += granted
        self.over_rate += len(lines) - granted
        if self.over_rate or self.unqueued:
            self._note_dropped()

    def close(self) -> None:
        """Log the drops not yet told (the platform stops, or the app goes)."""
        if self._notice_timer is not None:
            self._notice_timer.cancel()
        if self.over_rate or self.unqueued:
            self._notice()

    def _note_dropped(self) -> None:
        """Tell of dropped lines now if the last notice is `notice_every` old, else once it is (on the running
        loop; without one, at a later drop or at `close`)."""
        if self._notice_timer is not None:
            return
        delay = self._noticed + self._limits.notice_every - self._clock()
        if delay <= 0:
            self._notice()
            return
        with contextlib.suppress(RuntimeError):
            self._notice_timer = asyncio.get_running_loop().call_later(delay, self._notice)

    def _notice(self) -> None:
        self._notice_timer = None
        self._noticed = self._clock()
        if self.over_rate:
            self.write("shipyard[logs]", f"{lines_dropped(self.over_rate)}: the app wrote more than "
                       f"{self._limits.lines_per_second:g} lines/s")
            self.over_rate = 0
        if self.unqueued:
            self.write("shipyard[logs]", f"{lines_dropped(self.unqueued)}: the platform could not write the "
                       "logs as fast (a slow or full disk)")
            self.unqueued = 0

    # On disk (the writer's thread, or the caller's without a writer)

    def append(self, entries: list[object]) -> None:
        """Write formatted lines and Output batches; on a full disk they are dropped and counted."""
        lines: list[str] = []
        for entry in entries:
            if isinstance(entry, Output):
                lines += entry.render()
            else:
                lines.append(str(entry))
        written = len(lines)
        if self.dropped:
            lines.insert(0, format_line("shipyard[logs]", f"{self.dropped} log line(s) were dropped: the disk "
                                        "was full (or could not be written)"))
        try:
            self._write("".join(lines).encode("utf-8", errors="replace"))
        except OSError:
            self.dropped += written
            return
        self.dropped = 0

    def _write(self, data: bytes) -> None:
        # Rotate before writing so the current file is never left empty by a rotation.
        with contextlib.suppress(FileNotFoundError):
            size = os.stat(self.path).st_size
            if size and size + len(data) > self._max_bytes:
                self._rotate()
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o666)
        except FileNotFoundError:  # its folder went (the app was destroyed and made again)
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o666)
        try:
            start = os.fstat(fd).st_size
            view = memoryview(data)
            try:
                while view:
                    view = view[os.write(fd, view):]
            except OSError:
                # Never leave half a batch: the next write would continue a cut line.
                with contextlib.suppress(OSError):
                    os.ftruncate(fd, start)
                raise
        finally:
            os.close(fd)

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


class AppLogs:
    """The app logs of one platform: one AppLog per app (so its rate limit is the app's, whichever of its
    processes writes) and one writer thread for all."""

    def __init__(self, logs_dir: Path, limits: LogLimits | None = None) -> None:
        self._dir = logs_dir
        self._limits = limits = limits or LogLimits()
        self._writer = LogWriter(limits.queue_bytes)
        self._logs: dict[str, AppLog] = {}

    def get(self, app: str) -> AppLog:
        log = self._logs.get(app)
        if log is None:
            log = self._logs[app] = AppLog(self._dir / app / "app.log", writer=self._writer, limits=self._limits)
        return log

    async def flush(self) -> None:
        """Wait until what was logged so far is on disk (or dropped)."""
        await asyncio.to_thread(self._writer.flush, _FLUSH_TIMEOUT)

    async def forget(self, app: str) -> None:
        """An app is going: its pending notice is logged and its lines written before its folder goes."""
        if (log := self._logs.pop(app, None)) is not None:
            log.close()
            await self.flush()

    async def close(self) -> None:
        """Write what is queued and stop the writer; later lines are written at once by their caller."""
        for log in self._logs.values():
            log.close()
        await asyncio.to_thread(self._writer.close, _FLUSH_TIMEOUT)


async def follow(path: Path, lines: int, poll: float = 0.2):  # type: ignore[no-untyped-def]
    """Yield the last `lines` lines, then new lines as they are written (surviving rotation)."""
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
