"""App output is rate limited per app, cut to length and written by a thread; the platform's lines never are
limited. The full-disk cases use a real full file system: a small tmpfs the test mounts (root only)."""

from __future__ import annotations

import asyncio
import collections
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from shipyard.runtime.loglimits import LineSplitter, LogLimits, TokenBucket, cut
from shipyard.runtime.logs import AppLog, AppLogs
from shipyard.runtime.logwriter import LogWriter
from shipyard.runtime.shell import pump_output

from .tmpfs import tmpfs


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def writer_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "shipyard-log-writer"]


@pytest.fixture(autouse=True)
def no_leaked_writer() -> Iterator[None]:
    before = set(writer_threads())
    yield
    assert set(writer_threads()) <= before, "a log writer thread was left running"


def body(path: Path) -> list[str]:
    """The log's lines without their timestamps."""
    return [line.split(" ", 1)[1] for line in path.read_text().splitlines()]


# The limits, pure

def test_token_bucket_allows_a_burst_then_the_rate() -> None:
    bucket = TokenBucket(rate=100, burst=500, now=0.0)
    assert bucket.take(800, now=0.0) == 500
    assert bucket.take(800, now=0.0) == 0
    assert bucket.take(800, now=1.0) == 100  # refilled at the rate
    assert bucket.take(800, now=100.0) == 500  # never above the burst


def test_lines_split_across_chunks_and_long_lines_are_cut_without_buffering_them() -> None:
    lines = LineSplitter(limit=10)
    assert lines.feed(b"one\ntw") == [b"one"]
    assert lines.feed(b"o\nthree\n") == [b"two", b"three"]
    # A line longer than the limit inside one chunk comes whole; `cut` shortens it.
    long_inline = lines.feed(b"x" * 30 + b"\n")
    assert long_inline == [b"x" * 30] and cut(long_inline[0], 10).startswith(b"x" * 10 + b" [shipyard: line cut")
    # An unfinished line past the limit is given up at once, and its rest skipped up to its newline.
    first = lines.feed(b"y" * 25)
    assert first == [b"y" * 11]
    assert lines.feed(b"y" * 10_000) == []  # nothing held: memory stays bounded
    assert lines.feed(b"yyy\nafter\nlast") == [b"after"]
    assert lines.end() == [b"last"] and lines.end() == []


# AppLog without a writer (written at once): what is limited and what is not

def test_output_over_the_rate_is_dropped_and_counted_in_one_notice_a_second(tmp_path: Path) -> None:
    clock = Clock()
    log = AppLog(tmp_path / "app.log", limits=LogLimits(lines_per_second=10, burst=20), clock=clock)
    for second in range(3):
        for _ in range(10):  # 10 calls of 10 lines a second: 100 lines/s against a rate of 10
            log.output("app[web.1]", [f"s{second} line".encode()] * 10)
            clock.now += 0.1
    lines = body(tmp_path / "app.log")
    kept = [line for line in lines if line.startswith("app[web.1]")]
    notices = [line for line in lines if line.startswith("shipyard[logs]")]
    # The burst, then the rate for the 2.9 s from the first call to the last (a token may be lost to rounding).
    assert 20 + 10 * 2.9 - 1 <= len(kept) <= 20 + 10 * 2.9, len(kept)
    assert 2 <= len(notices) <= 3, notices  # at most one per second
    assert all(n.endswith("dropped: the app wrote more than 10 lines/s") for n in notices)
    log.close()  # what was dropped since the last notice is told
    told = sum(int(line.split(": ", 1)[1].split()[0]) for line in body(tmp_path / "app.log")
               if line.startswith("shipyard[logs]"))
    assert told == 300 - len(kept)


def test_the_platforms_own_lines_are_never_limited(tmp_path: Path) -> None:
    log = AppLog(tmp_path / "app.log", limits=LogLimits(lines_per_second=1, burst=1), clock=Clock())
    log.output("app[web.1]", [b"flood"] * 1000)
    for n in range(200):
        log.write("shipyard[web.1]", f"event {n}")
    events = [line for line in body(tmp_path / "app.log") if line.startswith("shipyard[web.1]")]
    assert len(events) == 200


def test_a_huge_line_is_cut_with_a_marker(tmp_path: Path) -> None:
    log = AppLog(tmp_path / "app.log")
    log.output("app[web.1]", [b"z" * 5_000_000])
    (line,) = body(tmp_path / "app.log")
    assert line.startswith("app[web.1]: " + "z" * 10240 + " [shipyard: line cut, it was longer than 10 KiB]")
    assert len(line) < 11 * 1024


def test_terminal_controls_in_output_are_escaped(tmp_path: Path) -> None:
    log = AppLog(tmp_path / "app.log")
    log.output("app[web.1]", [b"ok\r2026-01-01 shipyard[api]: fake", "caf\u00e9".encode(), b"\xff"])
    assert body(tmp_path / "app.log") == ["app[web.1]: ok\\x0d2026-01-01 shipyard[api]: fake",
                                          "app[web.1]: caf\u00e9", "app[web.1]: \ufffd"]


def test_the_notice_comes_on_its_own_timer_when_the_flood_stops(tmp_path: Path) -> None:
    async def flood_then_quiet() -> None:
        logs = AppLogs(tmp_path, LogLimits(lines_per_second=100, burst=100, notice_every=0.2))
        log = logs.get("noisy")
        log.output("app[web.1]", [b"x"] * 150)  # the first drop is told at once
        await asyncio.sleep(0.05)
        log.output("app[web.1]", [b"x"] * 300)  # told by the timer, though nothing more is written
        await asyncio.sleep(0.4)
        await logs.flush()
        notices = [line for line in body(tmp_path / "noisy" / "app.log") if line.startswith("shipyard[logs]")]
        assert len(notices) == 2, notices
        assert notices[0].startswith("shipyard[logs]: 50 lines dropped")
        await logs.close()

    asyncio.run(flood_then_quiet())


# The writer thread

def test_lines_are_written_by_the_writer_thread_in_order_and_it_stops_at_close(tmp_path: Path) -> None:
    async def run() -> None:
        logs = AppLogs(tmp_path)
        log = logs.get("app")
        assert logs.get("app") is log  # one log (one rate limit) per app
        log.write("shipyard[web.1]", "Starting process")
        log.output("app[web.1]", [b"hello", b"world"])
        log.write("shipyard[web.1]", "State changed from starting to up")
        assert writer_threads()
        await logs.close()
        assert not [t for t in writer_threads() if t.is_alive()]
        log.write("shipyard[web.1]", "Process exited with status 0")  # after close: written at once
        assert [line.split(": ", 1)[1] for line in body(tmp_path / "app" / "app.log")] == [
            "Starting process", "hello", "world", "State changed from starting to up", "Process exited with status 0"]

    asyncio.run(run())


def test_a_full_queue_drops_app_output_but_never_blocks_or_drops_platform_lines(tmp_path: Path) -> None:
    gate = threading.Event()

    class SlowLog(AppLog):
        def append(self, entries: list[object]) -> None:
            gate.wait(10)  # a disk that hangs
            super().append(entries)

    writer = LogWriter(queue_bytes=2000)
    log = SlowLog(tmp_path / "app.log", writer=writer, clock=Clock())
    try:
        started = time.monotonic()
        for n in range(100):
            log.output("app[web.1]", [b"x" * 100])
        for n in range(50):
            log.write("shipyard[api]", f"event {n}")
        assert time.monotonic() - started < 0.5  # never waited for the disk
        assert log.unqueued > 80
    finally:
        gate.set()
        assert writer.flush(10)
    log.close()
    assert writer.close()
    lines = body(tmp_path / "app.log")
    assert len([line for line in lines if line.startswith("shipyard[api]")]) == 50
    assert any("dropped: the platform could not write the logs as fast" in line for line in lines)


def test_pumping_a_flood_keeps_the_event_loop_responsive(tmp_path: Path) -> None:
    """`yes` writes as fast as a pipe takes: the loop keeps serving a 1 ms heartbeat on time, the log
    holds the rate, and the notice says how many lines were dropped."""
    async def run() -> tuple[float, list[str]]:
        logs = AppLogs(tmp_path, LogLimits(lines_per_second=1000, burst=2000))
        proc = await asyncio.create_subprocess_exec(
            "timeout", "2", "yes", "y" * 200, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        recent: collections.deque[str] = collections.deque(maxlen=20)
        pump = asyncio.create_task(pump_output(proc, logs.get("noisy"), "app[web.1]", recent))
        lags = []
        while not pump.done():
            before = time.perf_counter()
            await asyncio.sleep(0.001)
            lags.append(time.perf_counter() - before - 0.001)
        await proc.wait()
        await logs.close()
        assert len(recent) == 20 and recent[0] == "y" * 200  # (the last may be cut short by the kill)
        return sorted(lags)[int(len(lags) * 0.95)], body(tmp_path / "noisy" / "app.log")

    p95_lag, lines = asyncio.run(run())
    kept = [line for line in lines if line.startswith("app[web.1]")]
    dropped = sum(int(line.split(": ", 1)[1].split()[0]) for line in lines if line.startswith("shipyard[logs]"))
    assert 2000 <= len(kept) <= 2000 + 1000 * 2.5, len(kept)
    assert dropped > 10 * len(kept), (dropped, len(kept))
    assert p95_lag < 0.005, p95_lag


# A full disk, for real

@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    with tmpfs(tmp_path / "disk", "256k") as disk:
        yield disk


def fill(path: Path) -> None:
    with open(path, "wb", buffering=0) as f:
        try:
            while True:
                f.write(b"x" * 4096)
        except OSError:
            pass


def test_the_writer_thread_survives_a_full_disk_and_says_what_it_dropped(small_disk: Path) -> None:
    async def run() -> None:
        logs = AppLogs(small_disk / "logs")
        log = logs.get("app")
        log.output("app[web.1]", [b"before"])
        await logs.flush()
        fill(small_disk / "filler")
        for n in range(200):
            log.output("app[web.1]", [f"line {n} ".encode() + b"y" * 300])
            log.write("shipyard[web.1]", f"event {n}")
        await logs.flush()
        assert log.dropped >= 300
        (small_disk / "filler").unlink()
        log.output("app[web.1]", [b"after"])
        await logs.close()

    asyncio.run(run())
    text = (small_disk / "logs" / "app" / "app.log").read_text()
    lines = text.splitlines()
    assert lines[0].endswith("app[web.1]: before") and lines[-1].endswith("app[web.1]: after")
    assert "log line(s) were dropped: the disk was full" in lines[-2]
    # No half-written batch: every line is a whole stamped line.
    assert all(line[:4].isdigit() for line in lines), lines
    assert text.endswith("\n")


def test_a_destroyed_apps_log_folder_comes_back(tmp_path: Path) -> None:
    log = AppLog(tmp_path / "gone" / "app.log")
    (tmp_path / "gone").rmdir()
    log.write("shipyard[api]", "made again")
    assert body(tmp_path / "gone" / "app.log") == ["shipyard[api]: made again"]
