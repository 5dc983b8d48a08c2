"""What one app may put in its log: a rate of lines and a length of line (pure; no I/O, no clock of its own).

An app that floods its output must not slow the platform or fill its disk, and one huge line must not
take memory in proportion to its size: lines over the rate are dropped and counted (as Heroku's logplex
does), and long lines are cut.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class LogLimits:
    """Every limit of the app logs in one place."""

    # Sustained lines per second per app (all its processes together): far above what a busy app's request
    # log writes, far below what a print loop writes.
    lines_per_second: float = 1000.0
    # Lines an app may write at once above the rate: a long traceback, or a boot's output, passes whole.
    burst: int = 5000
    # Bytes of one line kept; the rest of a longer line is replaced by a marker.
    line_bytes: int = 10 * 1024
    # Bytes of app output waiting for the writer thread (all apps): past it, output is dropped and counted
    # rather than queued without bound while the disk is slow.
    queue_bytes: int = 8 * 1024 * 1024
    # Seconds between two "lines dropped" notices of one app.
    notice_every: float = 1.0


class TokenBucket:
    """`rate` tokens a second, holding at most `burst`; one token lets one line through."""

    def __init__(self, rate: float, burst: int, now: float) -> None:
        self._rate = rate
        self._burst = float(burst)
        self._tokens = float(burst)
        self._last = now

    def take(self, wanted: int, now: float) -> int:
        """How many of `wanted` lines may pass now (the first ones: the rest are over the rate)."""
        self._tokens = min(self._burst, self._tokens + (now - self._last) * self._rate)
        self._last = now
        granted = min(wanted, int(self._tokens))
        self._tokens -= granted
        return granted


def cut_marker(limit: int) -> bytes:
    return f" [shipyard: line cut, it was longer than {limit // 1024} KiB]".encode()


def cut(line: bytes, limit: int) -> bytes:
    """At most `limit` bytes of `line`, with a marker if it was longer."""
    return line if len(line) <= limit else line[:limit] + cut_marker(limit)


class LineSplitter:
    """Splits a byte stream into lines without holding more than `limit` bytes of an unfinished line.

    Complete lines inside one chunk come back whole (the chunk is in memory anyway; `cut` shortens the
    ones kept). A line still unfinished past `limit` bytes comes back as its first `limit` + 1 bytes (so
    `cut` marks it) and the rest of it, up to its newline, is skipped as it arrives.
    """

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._pending = b""
        self._skipping = False

    def feed(self, chunk: bytes) -> list[bytes]:
        parts = chunk.split(b"\n")
        rest = parts.pop()  # after the last newline: the start of a line not finished yet
        if parts:
            if self._skipping:
                del parts[0]  # the end of a line already cut
                self._skipping = False
            else:
                parts[0] = self._pending + parts[0]
            self._pending = b""
        elif self._skipping:
            return []
        self._pending += rest
        if len(self._pending) > self._limit:
            parts.append(self._pending[:self._limit + 1])
            self._pending = b""
            self._skipping = True
        return parts

    def end(self) -> list[bytes]:
        """The last line, when the stream ended without a newline."""
        last, self._pending = self._pending, b""
        return [last] if last else []
